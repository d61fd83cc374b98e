// After a failed submit, take keyboard and screen-reader users straight to the error summary.
(function () { var e = document.querySelector(".form-errors"); if (e) e.focus(); })();
