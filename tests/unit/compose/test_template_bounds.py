"""Templates cannot spend the machine: every hostile template gives a TemplateError naming it,
quickly, whether it is saved (compiled) or rendered.

The hostile templates run in a child process with a 2 GB address-space limit and a timeout,
so a regression fails these tests instead of hanging or swapping the suite (a thread is no
guard: ``9**(9**9)`` holds the GIL for minutes).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from pprint import pformat
from typing import Any

import pytest

from mailroom.compose.templates import Template, TemplateLibrary
from mailroom.config import load_settings
from mailroom.errors import SettingsError, TemplateError
from mailroom.notifications import Notifier
from mailroom.outbox.store import Outbox

CHILD_TIMEOUT = 240.0  # the whole batch; each case must end within CASE_SECONDS
CASE_SECONDS = 8.0  # render timeout (1 s in the child) plus slack for a busy machine
MEMORY_LIMIT = 2_000_000_000

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
limit = int(sys.argv[4])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from sqlalchemy import create_engine
from mailroom.compose.templates import Template, TemplateLibrary
from mailroom.errors import TemplateError
from mailroom.outbox import database

cases, mode, folder = json.loads(sys.stdin.read()), sys.argv[2], Path(sys.argv[3])
engine = None
if mode == "save":
    engine = create_engine(f"sqlite:///{folder / 'templates.db'}")
    database.upgrade(engine)
library = TemplateLibrary([folder], engine=engine, render_timeout=1.0)
context = {"items": list(range(10_000)), "name": "Ada"}
for source in cases:
    start = time.monotonic()
    try:
        if mode == "save":
            library.save("hostile", subject="s", text=source)
        elif mode == "html":
            library.render(Template("hostile", "s", html=source), context)
        else:
            library.render(Template("hostile", "s", text=source), context)
        result = {"outcome": "accepted"}
    except TemplateError as exc:
        result = {"outcome": "TemplateError", "template": exc.template, "message": str(exc)}
    except BaseException as exc:
        result = {"outcome": type(exc).__name__, "message": str(exc)[:300]}
    result["seconds"] = time.monotonic() - start
    print(json.dumps({"source": source, **result}), flush=True)
"""

SIZE = "TEMPLATE_MAX_OUTPUT_CHARS"
BITS = "larger than 10,000 bits"
# The iteration count or the clock, whichever a busy machine reaches first.
LOOPS = "loop iterations|TEMPLATE_RENDER_TIMEOUT"
RECURSION = "calls itself too deeply"
WIDTH = "format width or precision"

# (template, what the error must say: one of the parts between "|")
RENDERED = [
    # The issue's cases.
    ("{{ 9**(9**9) }}", BITS),
    ("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}", LOOPS),
    ("{% set r = range(100000) %}{% for a in r %}{% for b in r %}x{% endfor %}{% endfor %}", LOOPS),
    ("{% for a in items %}{% for b in items %}{% endfor %}{% endfor %}", LOOPS),
    ("{% for a in 'x' * 5000 %}{% for b in 'x' * 5000 %}{% endfor %}{% endfor %}", LOOPS),
    ("{{ 'a' * 10**9 }}", SIZE),
    ("{{ [1] * 10**9 }}", SIZE),
    ("{{ 'a'|center(10**9) }}", SIZE),
    ("{{ 'a'|center(1000000000) }}", SIZE),
    ("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", RECURSION),
    ("{% macro m() %}{{ m() }}{{ m() }}{% endmacro %}{{ m() }}", RECURSION),
    ("{% for x in [1, 2] recursive %}{{ loop([1, 2]) }}{% endfor %}", RECURSION),
    ("{% include 'self.txt' %}", RECURSION),
    ("{% extends 'ping.txt' %}", RECURSION),
    ("{{ 2.0 ** 10000 }}", "too large to represent"),
    ("{{ range(10**30) }}", "range() of more than 100,000 items"),
    # Doubling in a loop: strings, lists, numbers.
    (
        "{% set ns = namespace(x='a') %}{% for i in range(40) %}"
        "{% set ns.x = ns.x ~ ns.x %}{% endfor %}",
        SIZE,
    ),
    (
        "{% set ns = namespace(x=[1]) %}{% for i in range(40) %}"
        "{% set ns.x = ns.x + ns.x %}{% endfor %}",
        SIZE,
    ),
    (
        "{% set ns = namespace(x=3) %}{% for i in range(40) %}"
        "{% set ns.x = ns.x * ns.x %}{% endfor %}",
        BITS,
    ),
    # Widths and paddings, as filters, methods and formats.
    ("{{ '%0999999999d' % 1 }}", WIDTH),
    ("{{ '%*d' % (999999999, 1) }}", "'*' width"),
    ("{{ ('%999s' * 6000) % (('a',) * 6000) }}", SIZE),
    ("{{ '%0999999999d'|format(1) }}", WIDTH),
    ("{{ '{:>999999999}'.format(1) }}", WIDTH),
    ("{{ '{0:{1}}'.format('a', 999999999) }}", WIDTH),
    ("{{ '{0}{0}{0}{0}{0}{0}'.format('a' * 1000000) }}", SIZE),
    ("{{ 'a'.ljust(999999999) }}", SIZE),
    ("{{ 'a'.zfill(999999999) }}", SIZE),
    ("{{ (1).to_bytes(999999999, 'big') }}", SIZE),
    ("{{ 'x'|indent(999999999) }}", SIZE),
    ("{{ ('a\n' * 100000)|indent(100000) }}", SIZE),
    ("{{ ('ab' * 100000)|wordwrap(1, wrapstring='x' * 100000) }}", SIZE),
    ("{{ lipsum(999999) }}", SIZE),
    # Products of two moderate sizes.
    ("{{ ('a' * 100000)|replace('a', 'b' * 100000) }}", SIZE),
    ("{{ ('a' * 100000).replace('a', 'b' * 100000) }}", SIZE),
    ("{{ ('a' * 100000)|list|join('b' * 100000) }}", SIZE),
    ("{{ ('b' * 100000).join('a' * 100000) }}", SIZE),
    ("{% set big = 'a' * 1000000 %}{{ [big, big, big, big, big, big] }}", SIZE),
    ("{% set big = 'a' * 1000000 %}{{ ([big] * 1000)|join }}", SIZE),
    ("{% set big = 'a' * 1000000 %}{% for i in range(1000) %}{{ big }}{% endfor %}", SIZE),
    (
        "{% set big = 'a' * 1000000 %}{% set l = [big ~ 1, big ~ 2, big ~ 3, big ~ 4, big ~ 5] %}",
        SIZE,
    ),
    (
        "{% set big = 'a' * 1000000 %}{% set l = [big[1:], big[2:], big[3:], big[4:], big[5:]] %}",
        SIZE,
    ),
    ("{% set b = 'a' * 1000000 %}{% set l = [b[::-1], b[:-1], b[1::1], b[2:], b[3:]] %}", SIZE),
    (
        "{% macro m() %}{% for i in range(100000) %}" + "x" * 100 + "{% endfor %}{% endmacro %}"
        "{% set captured = m() %}",
        SIZE,
    ),
    (
        "{% for i in range(100000) %}{% for j in range(100) %}"
        + "x" * 50
        + "{% endfor %}{% endfor %}",
        SIZE,
    ),
    # Filters that make many items, and one that is quadratic (only the clock stops it).
    ("{{ [1]|batch(999999999, 'x')|list }}", "more than 100,000 items"),
    ("{{ [1]|slice(999999999)|list }}", "more than 100,000 items"),
    ("{{ 5|round(-999999999) }}", "round precision"),
    ("{{ ('a@b.c ' * 600000)|urlize }}", "|urlize of more than 200,000 characters"),
    ("{{ ('a-' * 2000000)|title }}", "|title of more than 1,000,000 characters"),
    ("{{ range(100000)|batch(1)|sum(start=[])|length }}", "TEMPLATE_RENDER_TIMEOUT"),
    # What str() of a value makes: namespaces, dict views and dicts count what they hold.
    (
        "{% set a = namespace(x=['y'*1000]) %}{% set b = namespace(x=[a]*1000) %}"
        "{% set c = namespace(x=[b]*1000) %}{{ [c]*1000 }}",
        SIZE,
    ),
    ("{% set d = {'a': 'y'*1000000} %}{{ [d.values()] * 3000 }}", SIZE),
    ("{% set d = {'a': 'y'*1000000} %}{{ [d.items(), d.keys()] * 1000 }}", SIZE),
    # A namespace can grow after a list holding it was built: printing it is checked again.
    (
        "{% set ns = namespace(x=1) %}{% set l = [ns] * 3000 %}"
        "{% set ns.x = 'y' * 1000000 %}{{ l }}",
        SIZE,
    ),
    (
        "{% set ns = namespace(x=1) %}{% set l = [ns] * 3000 %}"
        "{% set ns.x = 'y' * 1000000 %}{{ l|string|length }}",
        SIZE,
    ),
    (
        "{% set ns = namespace(x=1) %}{% set l = [ns] * 3000 %}"
        "{% set ns.x = 'y' * 1000000 %}{{ l|pprint|length }}",
        SIZE,
    ),
    ("{{ ('\x00' * 1000000).split('x') * 3 }}", SIZE),
    ("{{ (range(3000)|list)|tojson(indent=1000000)|length }}", "|tojson with an indent"),
    ("{{ (range(3000)|list)|tojson(indent=2)|length }}", "|tojson with an indent"),
    # Containers that hold the same container many times: hashing or comparing walks it all.
    ("{% set b = range(100000)|list %}{{ ([b]*2000)|sum(start=[])|length }}", SIZE),
    (
        "{% set t1 = (1,)*100 %}{% set t2 = (t1,)*100 %}{% set t3 = (t2,)*100 %}"
        "{% set t4 = (t3,)*100 %}{% set t5 = (t4,)*100 %}{% set d = {t5: 1} %}x",
        SIZE,
    ),
    (
        "{% set t1 = (1,)*1000 %}{% set t2 = (t1,)*1000 %}{% set t3 = (t2,)*1000 %}"
        "{% set d = {t3: 1} %}x",
        SIZE,
    ),
    (
        "{% set t1 = (1,)*100 %}{% set t2 = (t1,)*100 %}{% set t3 = (t2,)*100 %}"
        "{% set t4 = (t3,)*100 %}{% set t5 = (t4,)*100 %}{{ [t5, t5]|unique|list|length }}",
        SIZE,
    ),
    (
        "{% set a1 = [1]*100 %}{% set a2 = [a1]*100 %}{% set a3 = [a2]*100 %}"
        "{% set a4 = [a3]*100 %}{% set a5 = [a4]*100 %}{% set b1 = [1]*100 %}"
        "{% set b2 = [b1]*100 %}{% set b3 = [b2]*100 %}{% set b4 = [b3]*100 %}"
        "{% set b5 = [b4]*100 %}{{ a5 == b5 }}",
        SIZE,
    ),
    # ... built by literals, calls, + and filters instead of *.
    (
        "{% set x = (1,)*100 %}"
        + ("{% set x = (" + ", ".join(["x"] * 100) + ",) %}") * 5
        + "{% set d = {x: 1} %}x",
        SIZE,
    ),
    (
        "{% set ns = namespace(a=[1], b=[1]) %}{% for i in range(60) %}"
        "{% set ns.a = {'a': ns.a, 'b': ns.a} %}{% set ns.b = {'a': ns.b, 'b': ns.b} %}"
        "{% endfor %}{{ ns.a == ns.b }}",
        SIZE,
    ),
    (
        "{% set ns = namespace(a=[1], b=[1]) %}{% for i in range(60) %}"
        "{% set ns.a = dict(a=ns.a, b=ns.a) %}{% set ns.b = dict(a=ns.b, b=ns.b) %}"
        "{% endfor %}{{ ns.a == ns.b }}",
        SIZE,
    ),
    (
        "{% set ns = namespace(x=(1,)) %}{% for i in range(60) %}"
        "{% set ns.x = (ns.x,) + (ns.x,) %}{% endfor %}{{ {ns.x: 1} }}",
        SIZE,
    ),
    (
        "{% set t = ((1,)*1000,)*1000 %}{{ ([1]|batch(100000, t)|first)|unique|list|length }}",
        SIZE,
    ),
    (
        "{% set t = ((1,)*1000,)*1000 %}"
        "{{ ([1]|slice(100000, t)|map('last')|unique|list|length) }}",
        SIZE,
    ),
    (
        "{% set t1 = (1,)*1000000 %}{% set t2 = (1,)*1000000 %}"
        "{{ {}.fromkeys(range(1000), t1) == {}.fromkeys(range(1000), t2) }}",
        SIZE,
    ),
    # Quadratic in the length over the width.
    ("{{ ('a'*1000000)|wordwrap(1)|length }}", "|wordwrap(1) of more than 200,000 characters"),
]

# HTML: after the render, CSS inlining and the text part made from the HTML.
HTML = [
    (
        "<style>{% for i in range(20000) %}div p{color:red} {% endfor %}</style>"
        "{% for i in range(100000) %}<div><p>x</p></div>{% endfor %}",
        "too many to inline",
    ),
    (
        "<style>{% for i in range(20000) %}*:not(:nth-child(2n+1)) * *{color:red} {% endfor %}"
        "</style>{% for i in range(50000) %}<div><p>x</p></div>{% endfor %}",
        "too many to inline",
    ),
    (
        "<style>{% for i in range(1000) %}div{--p{{ i }}:red} {% endfor %}</style>"
        "{% for i in range(5000) %}<div>x</div>{% endfor %}",
        "too many to inline",
    ),
    (
        "<style>{% for i in range(1400) %}*{--{{ i }}:0}{% endfor %}</style>"
        "{% for i in range(1000) %}<b></b>{% endfor %}",
        "too many to inline",
    ),
    (
        # A class inside :not() narrows nothing: every <b> gets the 1,400 declarations.
        "<style>{% for i in range(1400) %}*:not(.q){--{{ i }}:0}{% endfor %}</style>"
        "{% for i in range(1000) %}<b></b>{% endfor %}",
        "too many to inline",
    ),
    (
        # The class is the second attribute, not the text in the title's quotes.
        "<style>{% for i in range(1400) %}.q{--{{ i }}:0}{% endfor %}</style>"
        '{% for i in range(1000) %}<b title=" class=z" class=q></b>{% endfor %}',
        "too many to inline",
    ),
    (
        # A quote in a <title> opens no attribute value that would hide the elements after.
        "<style>{% for i in range(1400) %}.q{--{{ i }}:0}{% endfor %}</style>"
        '<title><b x="</title>{% for i in range(1000) %}<b class=q></b>{% endfor %}">',
        "too many to inline",
    ),
    (
        "<style>*{--a:'{{ 'x' * 100000 }}'}</style>{% for i in range(190) %}<b></b>{% endfor %}",
        "with its CSS inlined, more than 5,000,000 (TEMPLATE_MAX_OUTPUT_CHARS)",
    ),
    (
        "{% for i in range(100000) %}<div><p>x</p></div>{% endfor %}",
        "too many to make a text part from",
    ),
]

SAVED = [
    ("{{ 9**(9**9) }}", BITS),
    ("{{ 9**9**9**9**9 }}", BITS),
    ("{{ 'a' * 10**9 }}", SIZE),
    ("{{ 'ab' * 1000000000 }}", SIZE),
    ("{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}", "nested too deeply"),
    ("{{ 1" + "|abs" * 3000 + " }}", "nested too deeply"),
    ("{% for a in [1] %}" * 300 + "{% endfor %}" * 300, "nested too deeply"),
    ("{{ " + "9" * 5000 + " }}", "cannot be compiled"),
    ("x" * 300_000, "the most is 200,000"),
]

FILES = {
    "self.txt": "{% include 'self.txt' %}",
    "ping.txt": "{% extends 'pong.txt' %}",
    "pong.txt": "{% extends 'ping.txt' %}",
}


def run_child(mode: str, cases: list[str], folder: Path) -> dict[str, dict[str, Any]]:
    for name, text in FILES.items():
        (folder / name).write_text(text, encoding="utf-8")
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, "-", mode, str(folder), str(MEMORY_LIMIT)],
            input=json.dumps(cases),
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"hostile templates still running after {CHILD_TIMEOUT} s: {exc.stdout!r}")
    results = {}
    for line in done.stdout.splitlines():
        result = json.loads(line)
        results[result.pop("source")] = result
    assert len(results) == len(set(cases)), done.stderr[-3000:]
    return results


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    return run_child("render", [source for source, _ in RENDERED], tmp_path_factory.mktemp("r"))


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    return run_child("save", [source for source, _ in SAVED], tmp_path_factory.mktemp("s"))


@pytest.fixture(scope="module")
def rendered_html(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    return run_child("html", [source for source, _ in HTML], tmp_path_factory.mktemp("h"))


def check(result: dict[str, Any], says: str, part: str = "text") -> None:
    assert result["outcome"] == "TemplateError", result
    assert result["template"] == "hostile"
    assert result["message"].startswith(f"template hostile: {part}: ")
    assert any(part in result["message"] for part in says.split("|")), result
    assert result["seconds"] < CASE_SECONDS, result


@pytest.mark.parametrize(("source", "says"), RENDERED, ids=[s[:60] for s, _ in RENDERED])
def test_hostile_template_fails_quickly_when_rendered(
    rendered: dict[str, dict[str, Any]], source: str, says: str
) -> None:
    check(rendered[source], says)


@pytest.mark.parametrize(("source", "says"), HTML, ids=[s[:60] for s, _ in HTML])
def test_hostile_html_fails_quickly_after_the_render(
    rendered_html: dict[str, dict[str, Any]], source: str, says: str
) -> None:
    check(rendered_html[source], says, "html")


@pytest.mark.parametrize(("source", "says"), SAVED, ids=[s[:40] for s, _ in SAVED])
def test_hostile_template_is_refused_quickly_when_saved(
    saved: dict[str, dict[str, Any]], source: str, says: str
) -> None:
    check(saved[source], says)


# -- ordinary templates still work --------------------------------------------------------------


def render_text(source: str, library: TemplateLibrary | None = None, **context: object) -> str:
    return (library or TemplateLibrary()).render(Template("t", "s", text=source), context).text


def test_loops_over_ten_thousand_items_and_ordinary_filters() -> None:
    items = [{"name": f"item {i}", "price": i * 1.5} for i in range(10_000)]
    text = render_text(
        "{% for item in items %}{{ loop.index }}. {{ item.name|title|center(12) }}"
        " {{ '%.2f'|format(item.price) }} {{ '{:>8}'.format(item.price|round(1)) }}\n"
        "{% endfor %}{{ items|map(attribute='name')|join(', ')|truncate(30) }}"
        "|{{ ', '.join(['a', 'b']) }}|{{ 'ab' * 3 }}|{{ 2**64 }}|{{ 'x' ~ 1 ~ none }}"
        "|{{ (items|length / 3)|int }}|{{ range(3)|list }}"
        "|{{ lipsum(1, html=False)|wordcount > 5 }}",
        items=items,
    )
    lines = text.split("\n")
    assert len(lines) == 10_001
    assert lines[0] == f"1. {'Item 0'.center(12)} 0.00 {'0.0':>8}"
    assert lines[9_999] == f"10000. {'Item 9999'.center(12)} 14998.50 {'14998.5':>8}"
    assert lines[-1] == (
        "item 0, item 1, item 2,...|a, b|ababab|18446744073709551616|x1None|3333|[0, 1, 2]|True"
    )


def test_macros_blocks_and_autoescape_are_unchanged() -> None:
    rendered = TemplateLibrary().render(
        Template(
            "t",
            "s",
            html=(
                "{% macro row(x) %}<td>{{ x }}</td>{% endmacro %}"
                "{% set title %}<b>{{ name }}</b>{% endset %}"
                "<p>{{ title }}{{ name ~ '&' }}{{ row(name) }}{{ '<i>%s</i>'|safe % name }}</p>"
            ),
        ),
        {"name": "<Ada>"},
    )
    assert rendered.html == (
        "<p><b>&lt;Ada&gt;</b>&lt;Ada&gt;&amp;<td>&lt;Ada&gt;</td><i>&lt;Ada&gt;</i></p>"
    )


def test_output_limit_and_timeout_are_the_library_settings() -> None:
    small = TemplateLibrary(max_output_chars=1_000)
    assert render_text("{{ 'a' * 500 }}", small) == "a" * 500
    with pytest.raises(TemplateError, match=r"more than 1,000 characters \(TEMPLATE_MAX"):
        render_text("{{ 'a' * 500 }}{{ 'b' * 600 }}", small)
    with pytest.raises(TemplateError, match="more than 1,000 characters"):
        render_text("{% for i in range(100) %}0123456789_{% endfor %}", small)
    hurried = TemplateLibrary(render_timeout=0.2)
    with pytest.raises(TemplateError, match=r"longer than 0.2 s to render \(TEMPLATE_RENDER"):
        render_text("{{ range(20000)|batch(1)|sum(start=[])|length }}", hurried)


def test_each_render_has_its_own_budget() -> None:
    library = TemplateLibrary(max_output_chars=1_000)
    for _ in range(5):
        assert render_text("{{ 'a' * 900 }}", library) == "a" * 900


def test_template_errors_name_the_template_not_a_python_exception() -> None:
    for source, says in [
        ("{{ 1/0 }}", "ZeroDivisionError: division by zero"),
        ("{{ 'a' + 1 }}", "TypeError"),
    ]:
        with pytest.raises(TemplateError, match=f"template t: text: {says}"):
            render_text(source)


@pytest.mark.parametrize(
    ("name", "value"),
    [("TEMPLATE_RENDER_TIMEOUT", "0"), ("TEMPLATE_MAX_OUTPUT_CHARS", "0")],
)
def test_template_bound_settings_must_be_positive(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={name: value})
    assert info.value.setting == name


def test_template_bound_settings_reach_the_notifier_library(tmp_path: Path) -> None:
    settings = load_settings(
        environ={
            "TEMPLATE_RENDER_TIMEOUT": "0.5",
            "TEMPLATE_MAX_OUTPUT_CHARS": "1234",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'outbox.db'}",
        }
    )
    outbox = Outbox(settings)
    try:
        library = Notifier(outbox).templates
        assert (library.render_timeout, library.max_output_chars) == (0.5, 1234)
    finally:
        outbox.dispose()


def test_values_built_from_big_context_values_stay_fast() -> None:
    # Literals and + are weighed; a big list met again is weighed once per render, so the
    # usual loops over a context list stay linear.
    items = [{"name": f"item {i}", "tags": ["a", "b"]} for i in range(10_000)]
    text = render_text(
        "{% set ns = namespace(acc=[]) %}{% for i in items[:2000] %}"
        "{% set ns.acc = ns.acc + [i] %}{% endfor %}{{ ns.acc|length }}"
        "|{% for i in items %}{% set ns.d = {'one': i, 'all': items} %}{% endfor %}"
        "{{ ns.d['all']|length }}|{{ (items[:3]|map(attribute='tags')|list)|sum(start=[]) }}"
        "|{{ [(1, 2), (3,)]|sum(start=()) }}|{{ [1, 2.5]|sum }}",
        TemplateLibrary(render_timeout=5.0),
        items=items,
    )
    assert text == "2000|10000|['a', 'b', 'a', 'b', 'a', 'b']|(1, 2, 3)|3.5"


def test_printing_namespaces_views_and_pprint() -> None:
    assert render_text(
        "{% set ns = namespace(x=[1]) %}{% set ns.me = ns %}{{ ns }}|{{ {'a': 1}.items() }}"
    ) == ("<Namespace {'x': [1], 'me': <Namespace {...}>}>|dict_items([('a', 1)])")
    small = {"key": list(range(30)), "other": "x" * 40}
    big = {"key": list(range(3000))}
    text = render_text("{{ small|pprint }}|{{ big|pprint }}", small=small, big=big)
    small_text, big_text = text.split("|")
    assert small_text == pformat(small)  # laid out over lines, as Python's pprint does
    assert "\n" in small_text
    assert big_text == repr(big)  # over 2,000 characters: one line
    assert render_text("{{ small|tojson(indent=2) }}", small=small) == json.dumps(small, indent=2)


def test_wordwrap_of_a_long_text_at_an_ordinary_width() -> None:
    text = render_text("{{ ('word ' * 100000)|wordwrap(60)|length }}")
    assert text == "499999"  # each space a space or a line break; the last one stripped


def test_ordinary_html_is_inlined_and_gets_a_text_part() -> None:
    # 200 rules (about 3,000 characters of CSS) and 2,000 elements: well within the bounds.
    rules = "".join(f".c{i} {{ color: #{i:06d}; }}\n" for i in range(200))
    rows = "".join(f'<p class="c{i % 200}">row {i}</p>' for i in range(2_000))
    rendered = TemplateLibrary().render(
        Template("t", "s", html=f"<style>{rules}</style>{rows}"), {}
    )
    assert rendered.html is not None
    assert '<p class="c7" style="color: #000007;">row 7</p>' in rendered.html
    assert rendered.text.startswith("row 0\n\nrow 1\n")
    assert rendered.text.endswith("row 1999\n")


def test_a_big_context_value_can_be_sorted_and_filtered() -> None:
    # Filters rearrange what the application gave: their results are not weighed again, so
    # data heavier than the budget can still be sorted to print a part of it.
    names = [f"{i:05d} " + "x" * 60 for i in range(10_000)]  # about 700,000 characters
    library = TemplateLibrary(max_output_chars=100_000)
    text = render_text(
        "{{ (names|sort(reverse=true)|first)[:5] }}|{{ names|select('lt', '00002')|list|length }}",
        library,
        names=names,
    )
    assert text == "09999|2"


def test_a_text_with_line_breaks_counts_its_length_when_printed() -> None:
    # In a list, repr writes a line break as two characters; printed as text it is one.
    rendered = TemplateLibrary().render(
        Template(
            "t",
            "s",
            html=(
                "{% set block %}{% for i in range(80000) %}<p>line</p>\n<br>\n{% endfor %}"
                "{% endset %}{{ block ~ '.' }}"
            ),
            text="x",
        ),
        {},
    )
    assert rendered.html == "<p>line</p>\n<br>\n" * 80_000 + "."


ORDER_EMAIL = (Path(__file__).parent / "order_email.html.j2").read_text()


def order_context(rows: int) -> dict[str, Any]:
    orders = [
        {
            "id": i,
            "name": f"Widget number {i} - deluxe edition",
            "qty": i % 7 + 1,
            "price": i * 1.25,
            "tags": ["red", "blue", "sale"][: i % 3 + 1],
            "attrs": {"colour": "red", "size": str(i % 5), "sku": f"SKU-{i:06d}"},
        }
        for i in range(rows)
    ]
    return {
        "orders": orders,
        "user": {"name": "Ada Lovelace", "email": "ada@example.com"},
        "totals": {f"k{i}": i * 2.5 for i in range(50)},
        "notes": "Thanks!\n" * 20,
    }


def test_an_ordinary_order_email_is_inlined_quickly() -> None:
    # 5.4 kB of CSS in about 100 rules (a:hover-like ':' counted nowhere) and a 500-row table
    # of 4,581 elements: refused before, as if every rule matched every element.
    library = TemplateLibrary(render_timeout=30.0)
    # CPU time, not wall time: the bound is on the work done (quadratic matching took tens of
    # seconds), and a machine busy with other processes must not fail it.
    start = time.process_time()
    rendered = library.render(Template("order", "s", html=ORDER_EMAIL), order_context(500))
    assert time.process_time() - start < 1.0
    assert rendered.html is not None
    assert "sans-serif;text-align: right;" in rendered.html  # td and .price, merged
    assert "Widget number 499" in rendered.text
    # 2,000 rows (18,000 elements) too, and its text part.
    rendered = library.render(Template("order", "s", html=ORDER_EMAIL), order_context(2_000))
    assert "Widget number 1999" in rendered.text


def test_a_four_thousand_row_table_gets_a_text_part() -> None:
    # 36,001 elements (30,000 was the most before): about a second of layout.
    html = (
        "<table>{% for i in range(4000) %}<tr>{% for c in range(8) %}<td>{{ i }}.{{ c }}</td>"
        "{% endfor %}</tr>{% endfor %}</table>"
    )
    rendered = TemplateLibrary(render_timeout=30.0).render(Template("t", "s", html=html), {})
    assert "3999.7" in rendered.text


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "{% set ns = namespace(rows=[]) %}{% for item in items[:3000] %}"
            "{% set ns.rows = ns.rows + [item] %}{% endfor %}{{ ns.rows|length }}",
            "3000",
        ),
        (
            "{% set ns = namespace(d={}) %}{% for item in items[:3000] %}"
            "{% set ns.d = dict(ns.d, **{('k' ~ item): item}) %}{% endfor %}{{ ns.d|length }}",
            "3000",
        ),
        (
            "{% set ns = namespace(rows=[]) %}{% for item in items[:3000] %}"
            "{% set ns.rows = ns.rows + [{'id': item, 'name': 'n' ~ item}] %}{% endfor %}"
            "{{ ns.rows|length }}",
            "3000",
        ),
        # 25 kB at the end, but each pass copies the whole: 60 MB built on the way.
        (
            "{% set ns = namespace(total=0, names=[]) %}{% for item in items[:5000] %}"
            "{% set ns.total = ns.total + item %}{% set ns.names = ns.names + ['n' ~ item] %}"
            "{% endfor %}{{ ns.total }} {{ ns.names|length }}",
            "12497500 5000",
        ),
        (
            "{% set ns = namespace(s='') %}{% for item in items[:5000] %}"
            "{% set ns.s = ns.s ~ item ~ ',' %}{% endfor %}{{ ns.s|length }}",
            "23890",
        ),
    ],
    ids=["list", "dict", "list of dicts", "names", "string"],
)
def test_accumulating_in_a_namespace_is_fast(source: str, expected: str) -> None:
    start = time.process_time()  # the work done, not a busy machine's wall time
    assert render_text(source, items=list(range(10_000))) == expected
    assert time.process_time() - start < 1.0
