"""Templates: files, the sandbox, autoescaping, CSS inlining and the generated text part."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailroom.compose.templates import Template, TemplateLibrary
from mailroom.errors import TemplateError

ENV_SECRET = "env-secret-value-that-must-not-render"


def render_text(source: str, **context: object) -> str:
    return TemplateLibrary().render(Template("t", "s", text=source), context).text


# -- the sandbox ----------------------------------------------------------------------------

ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.environ }}",
    "{{ joiner.__init__.__globals__.os.environ }}",
    "{{ namespace.__init__.__globals__.os.environ }}",
    "{{ lipsum.__globals__['os'].environ }}",
    "{{ self._TemplateReference__context }}",
    "{{ self.__dict__ }}",
    "{{ '{0.__class__}'.format(name) }}",
    "{{ name|attr('__class__') }}",
    "{{ name.upper.__self__ }}",
    "{% for c in ().__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ items.append(1) }}",
    "{{ settings }}",
    "{{ config }}",
    "{{ environ }}",
    "{{ os }}",
    "{{ request }}",
    "{{ obj.func.__globals__ }}",
    "{{ obj.func.__code__ }}",
    # CVE-2025-27516 (Jinja2 < 3.1.6): |attr reached str.format around the sandbox.
    '{{ "{0.__init__.__globals__}"|attr("format")(cycler) }}',
    '{{ "{0.__init__.__globals__[os].environ}"|attr("format")(cycler) }}',
    '{% set f = "{0.__init__.__globals__[os].environ[SECRET_KEY]}"|attr("format") %}'
    "{{ f(cycler) }}",
    "{{ ('{0.__init__.__globals__[os].environ}'|attr('format_map'))({'0': joiner}) }}",
]


class Holder:
    """An object an app might pass, with a function attribute reaching module globals."""

    @staticmethod
    def func() -> str:
        return "ok"


@pytest.mark.parametrize("source", ESCAPES)
def test_templates_cannot_reach_settings_environment_or_internals(
    source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILROOM_TEST_ENV_SECRET", ENV_SECRET)
    monkeypatch.setenv("SECRET_KEY", ENV_SECRET)
    with pytest.raises(TemplateError) as info:
        render_text(source, name="Ada", items=[1], obj=Holder())
    assert ENV_SECRET not in str(info.value)
    assert info.value.template == "t"


def test_unsafe_attribute_is_named_as_a_sandbox_violation() -> None:
    with pytest.raises(TemplateError, match="not allowed in a template"):
        render_text("{{ name.__class__ }}", name="Ada")


def test_mutating_methods_are_refused() -> None:
    with pytest.raises(TemplateError, match="not allowed"):
        render_text("{% set _ = items.append(2) %}{{ items }}", items=[1])


def test_html_values_are_escaped_and_text_and_subject_are_not() -> None:
    library = TemplateLibrary()
    rendered = library.render(
        Template(
            "t",
            subject="Re: {{ title }}",
            html="<p>{{ title }}</p><a href='/x?q={{ title|urlencode }}'>x</a>",
            text="{{ title }}",
        ),
        {"title": "<script>alert('x')</script> & \"quotes\""},
    )
    assert rendered.html is not None
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &#34;quotes&#34;" in rendered.html
    assert rendered.text == "<script>alert('x')</script> & \"quotes\""
    assert rendered.subject == "Re: <script>alert('x')</script> & \"quotes\""


def test_subject_is_one_line() -> None:
    rendered = TemplateLibrary().render(
        Template("t", subject="  Hello\n  {{ name }}\r\n  !\n", text="x"), {"name": "Zoë"}
    )
    assert rendered.subject == "Hello Zoë !"


def test_undefined_variable_and_syntax_error_name_the_template() -> None:
    with pytest.raises(TemplateError, match=r"template t: text: 'missing' is undefined"):
        render_text("{{ missing }}")
    with pytest.raises(TemplateError, match="syntax error on line 2"):
        render_text("ok\n{% if %}")


def test_a_template_needs_a_body() -> None:
    with pytest.raises(TemplateError, match="needs an html or a text body"):
        Template("t", "subject")


# -- html → text and CSS --------------------------------------------------------------------


def test_text_part_is_made_from_html_with_readable_links() -> None:
    rendered = TemplateLibrary().render(
        Template(
            "t",
            "s",
            html=(
                "<html><head><style>h1 { font-size: 20px } @media (max-width: 600px) "
                "{ h1 { font-size: 16px } }</style></head><body><h1>Hi {{ name }}</h1>"
                "<p>See <a href='https://app.example/t/1?a=1&amp;b=2'>the task</a> or "
                "<a href='https://app.example/x'>https://app.example/x</a>.</p>"
                "<ul><li>one</li><li>two</li></ul></body></html>"
            ),
        ),
        {"name": "Zoë"},
    )
    assert rendered.text == (
        "Hi Zoë\n\n"
        "See the task (https://app.example/t/1?a=1&b=2) or https://app.example/x.\n\n"
        "  * one\n  * two\n"
    )
    assert rendered.html is not None
    assert '<h1 style="font-size: 20px;">Hi Zoë</h1>' in rendered.html
    assert "@media (max-width: 600px)" in rendered.html  # kept for readers that honour it


def test_remote_stylesheets_are_never_fetched() -> None:
    rendered = TemplateLibrary().render(
        Template(
            "t",
            "s",
            html='<link rel="stylesheet" href="http://127.0.0.1:9/x.css"><style>p{}</style><p>x</p>',
        ),
        {},
    )
    assert rendered.html is not None
    assert "<p" in rendered.html


# -- files ----------------------------------------------------------------------------------


def test_templates_from_folders_with_inheritance(tmp_path: Path) -> None:
    first, second = tmp_path / "app", tmp_path / "defaults"
    first.mkdir()
    second.mkdir()
    (second / "base.html").write_text(
        "<html><body>{% block content %}{% endblock %}<p>— {{ app_name }}</p></body></html>",
        encoding="utf-8",
    )
    (second / "welcome.subject.txt").write_text("Default subject\n", encoding="utf-8")
    (second / "welcome.txt").write_text("default", encoding="utf-8")
    (first / "welcome.subject.txt").write_text("Welcome, {{ name }}\n", encoding="utf-8")
    (first / "welcome.html").write_text(
        '{% extends "base.html" %}{% block content %}<p>Hello {{ name }}</p>{% endblock %}',
        encoding="utf-8",
    )
    library = TemplateLibrary([first, second])
    rendered = library.render("welcome", {"name": "Łukasz", "app_name": "Acme"})
    assert rendered.subject == "Welcome, Łukasz"
    assert rendered.html == "<html><body><p>Hello Łukasz</p><p>— Acme</p></body></html>"
    assert rendered.text == "Hello Łukasz\n\n— Acme\n"


def test_missing_template_and_bad_names(tmp_path: Path) -> None:
    library = TemplateLibrary([tmp_path])
    with pytest.raises(TemplateError, match="not found"):
        library.get("absent")
    for bad in ("../etc/passwd", "/abs", "a/../b", "", "a b"):
        with pytest.raises(TemplateError):
            library.get(bad)


def test_globals_are_callable_from_templates() -> None:
    library = TemplateLibrary(globals_={"deep_link": lambda path: f"https://app.example{path}"})
    rendered = library.render(Template("t", "s", text="{{ deep_link('/a') }}"), {})
    assert rendered.text == "https://app.example/a"
