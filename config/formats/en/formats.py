"""Date formats for English, everywhere (admin included): the UTC style of Quell's pages.

Django's locale formats ("Jan. 5, 2026, 3:04 p.m.") win over the DATETIME_FORMAT setting
whenever localisation is on, so the admin showed dates unlike every other page. This module
(settings.FORMAT_MODULE_PATH) makes the admin, forms and templates agree: 2026-01-05 15:04 UTC.
"""

DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATE_FORMAT = "Y-m-d"
SHORT_DATETIME_FORMAT = "Y-m-d H:i T"
YEAR_MONTH_FORMAT = "F Y"
MONTH_DAY_FORMAT = "F j"
FIRST_DAY_OF_WEEK = 1  # Monday
# Accept what is shown (and the ISO forms) when typed back into a form.
DATE_INPUT_FORMATS = ["%Y-%m-%d"]
TIME_INPUT_FORMATS = ["%H:%M:%S", "%H:%M:%S.%f", "%H:%M"]
DATETIME_INPUT_FORMATS = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M"]
