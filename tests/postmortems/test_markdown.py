"""Markdown is rendered and sanitised: typed HTML and hostile links never become live markup."""

from postmortems.markdown import render_markdown


def test_script_tags_typed_into_a_field_come_out_as_text():
    html = render_markdown("Before <script>alert('x')</script> after")
    assert "<script" not in html
    assert "&lt;script&gt;" in html


def test_raw_html_blocks_and_event_handlers_are_neutralised():
    html = render_markdown(
        '<img src=x onerror="alert(1)">\n\n<iframe src="https://e.vil"></iframe>'
    )
    assert "<img" not in html and "<iframe" not in html
    assert "onerror" not in html or "&lt;img" in html


def test_javascript_links_are_dropped_and_safe_links_get_rel():
    html = render_markdown("[click](javascript:alert(1)) and [docs](https://example.com/a)")
    assert 'href="javascript' not in html
    assert 'href="https://example.com/a"' in html
    assert "noopener" in html


def test_data_urls_are_not_kept():
    html = render_markdown("[x](data:text/html;base64,PHNjcmlwdD4=)")
    assert 'href="data:' not in html


def test_formatting_lists_code_and_tables_survive():
    html = render_markdown(
        "# Root cause\n\n**Missing** index on `orders(customer_id)`\n\n- one\n- two\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n~~wrong~~\n\n```sql\nSELECT 1;\n```"
    )
    for tag in ("<h1>", "<strong>", "<code>", "<li>", "<table>", "<td>", "<s>", "<pre>"):
        assert tag in html


def test_empty_text_renders_nothing():
    assert render_markdown("") == ""
    assert render_markdown(None) == ""
