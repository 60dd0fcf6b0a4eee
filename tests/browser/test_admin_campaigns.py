"""A campaign from start to end in a real browser: composed with its live preview, previewed
as a chosen contact, saved, sent to a 1,000-contact list through the capture transport while
its page follows the progress to 100 %, its results and chart; then one captured message
opened and its unsubscribe link followed. At laptop and phone sizes, each step shot."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Dialog, Page, expect
from sqlalchemy import Engine

from mailroom.outbox.database import create_outbox_engine
from support.browser import PageWatch
from support.browser_site import Site, login, running_site
from support.campaign_lists import make_list

from .conftest import Shoot, shoot_whole

POSTAL_ADDRESS = "1 Main St, Springfield, IL 62701, USA"
BODY_LINES = (
    "<h1>Hello {{ contact.name }}</h1>",
    "<p>Here is what is new this month for the <strong>{{ contact.plan }}</strong> plan.</p>",
    '<p><a href="https://acme.example/news">Read the whole story</a></p>',
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The browser tests' service, with what campaigns need: the postal address of every
    footer, and opens and clicks tracked on the bulk stream."""
    home = tmp_path_factory.mktemp("campaign-site")
    extra = {
        "ORGANIZATION_POSTAL_ADDRESS": POSTAL_ADDRESS,
        "TRACK_OPENS": "bulk",
        "TRACK_CLICKS": "bulk",
    }
    with running_site(home, extra) as running:
        yield running


@pytest.fixture(scope="module")
def engine(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    database = site.process.cwd / "mailroom.db"
    made = create_outbox_engine(f"sqlite:///{database}")
    yield made
    made.dispose()


def accept(dialog: Dialog) -> None:
    dialog.accept()


def tracking_links(site: Site, captured_id: int) -> tuple[str, str]:
    """The open pixel's and the tracked link's URLs of a captured message, on the service."""
    with site.api() as api:
        detail = api.get(f"/api/v1/captured/{captured_id}").json()
    pixel = re.search(r'src="(https://mail\.acme\.example/trck/[^"]+)"', detail["html"])
    click = re.search(r'href="(https://mail\.acme\.example/c/[^"]+)"', detail["html"])
    assert pixel, detail["html"]
    assert click, detail["html"]
    return site.local(html.unescape(pixel.group(1))), site.local(html.unescape(click.group(1)))


def test_compose_preview_send_to_a_thousand_and_unsubscribe(
    page: Page, site: Site, engine: Engine, shoot: Shoot, watches: dict[int, PageWatch]
) -> None:
    make_list(engine, "Readers", 1000)
    page.on("dialog", accept)  # the confirm before sending
    page.goto(f"{site.url}/admin/campaigns/new")
    login(page, site)
    expect(page.get_by_role("heading", level=1)).to_have_text("New campaign")

    # Compose: the preview follows the text as it is typed, in the list's first contact's name.
    page.get_by_label("Name").fill("Monthly news")
    expect(page.get_by_label("List")).to_have_value("list:Readers")
    page.get_by_label("Subject").fill("News for {{ contact.name }}")
    page.get_by_label("From").fill("Acme News <news@acme.example>")
    body = page.get_by_label("Body")
    body.fill("\n".join(BODY_LINES))
    status = page.locator("[data-preview-status]")
    expect(status).to_have_text("Preview up to date")
    frame = page.frame_locator("iframe[data-preview-frame]")
    expect(frame.locator("h1")).to_have_text("Hello Reader 0")
    expect(page.locator("[data-preview-subject]")).to_have_text("News for Reader 0")
    expect(frame.locator(".mailroom-footer")).to_contain_text(POSTAL_ADDRESS)

    # As a chosen contact: their merge fields.
    page.get_by_label("Preview as").fill("reader7@example.com")
    expect(frame.locator("h1")).to_have_text("Hello Reader 7")
    expect(page.locator("[data-preview-to]")).to_have_text("Reader 7 <reader7@example.com>")
    expect(frame.locator("strong")).to_have_text("pro")
    shoot_whole(page, "campaign-compose", shoot)

    # A mistake is named with its line.
    body.fill("\n".join((*BODY_LINES[:2], "<p>{{ contact.name }</p>")))
    expect(page.locator("[data-preview-error-list]")).to_contain_text("Body, line 3: syntax error")
    shoot_whole(page, "campaign-compose-error", shoot)
    body.fill("\n".join(BODY_LINES))
    expect(frame.locator("h1")).to_have_text("Hello Reader 7")

    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Monthly news")
    expect(page.get_by_role("status").first).to_have_text("Saved the draft “Monthly news”.")
    expect(page.locator("[data-progress-summary]")).to_have_text("It would go to 1,000 contacts.")

    # The campaign page previews as any contact too.
    page.locator("#campaign-preview-as").fill("reader42@example.com")
    page.get_by_role("button", name="Show").click()
    expect(frame.locator("h1")).to_have_text("Hello Reader 42")
    shoot_whole(page, "campaign-draft", shoot)

    # Send: the page follows the progress by itself, to 100 %.
    page.get_by_role("button", name="Send now").click()
    expect(page.locator("[data-campaign-status]")).to_have_text("sending")
    page.evaluate("window.__sameDocument = true")
    sent = page.locator('[data-count="sent"]')
    # Updated in place (no reload yet) while it sends, then reloaded once it finishes.
    page.wait_for_function(
        "() => window.__sameDocument !== true"
        " || document.querySelector('[data-count=\"sent\"]').textContent !== '0'",
        timeout=60_000,
    )
    shoot_whole(page, "campaign-sending", shoot)
    expect(page.locator("[data-progress-percent]")).to_have_text("100 %", timeout=120_000)
    expect(page.locator("[data-campaign-status]")).to_have_text("finished", timeout=10_000)
    expect(sent).to_have_text("1,000")
    expect(page.locator('[data-count="remaining"]')).to_have_text("0")
    expect(page.locator("svg.campaign-chart")).to_be_visible()
    shoot_whole(page, "campaign-finished", shoot)
    campaign_page = page.url

    # One captured message, and its unsubscribe link followed. Its open-tracking pixel is
    # refused by the frame's CSP, as it should be: the admin reading it is not an open.
    watches[id(page)].expect_console_errors(
        r"^Loading the image 'https://mail\.acme\.example/trck/.* violates the following "
        r"Content Security Policy directive: \"img-src data:\""
    )
    page.goto(f"{site.url}/admin/captured")
    page.get_by_role("link", name=re.compile(r"^News for Reader \d+$")).first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("News for Reader")
    shoot_whole(page, "campaign-captured", shoot)
    captured_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    page.get_by_role("link", name="Text", exact=True).click()
    text = page.locator("pre.source").inner_text()
    assert POSTAL_ADDRESS in text
    found = re.search(r"Unsubscribe: (https://mail\.acme\.example/unsubscribe/\S+)", text)
    assert found, text
    page.goto(site.local(found.group(1)))
    expect(page.get_by_role("heading", level=1)).to_have_text("Unsubscribe")
    expect(page.get_by_text("the mailing list Readers")).to_be_visible()
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are unsubscribed")
    shoot(page, "campaign-unsubscribed")

    # The recipient reads it (the pixel, from a mail client and from Gmail's image proxy)
    # and follows its link: the campaign's results count them, the link by its URL.
    opened, clicked = tracking_links(site, captured_id)
    reader = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120"}
    with httpx.Client(timeout=10.0, follow_redirects=False) as client:
        assert client.get(opened, headers=reader).status_code == 200
        assert client.get(opened, headers={"User-Agent": "GoogleImageProxy"}).status_code == 200
        followed = client.get(clicked, headers=reader)
        assert followed.headers["location"] == "https://acme.example/news"
    page.goto(campaign_page)
    links = page.locator("table.campaign-links tbody tr")
    deadline = time.monotonic() + 15
    while not links.count():  # the hits are written a second or so after they came
        assert time.monotonic() < deadline, "the click was not counted"
        time.sleep(0.3)
        page.reload()
    expect(links.first.get_by_role("cell").nth(1)).to_have_text("https://acme.example/news")
    result = page.locator(".campaign-results .stat")
    expect(result.filter(has_text="Unsubscribed").locator(".stat-value")).to_have_text("1")
    expect(result.filter(has_text="Opened").locator(".stat-value")).to_have_text("1")
    expect(result.filter(has_text="Proxy opens").locator(".stat-value")).to_have_text("1")
    shoot_whole(page, "campaign-results", shoot)

    page.goto(f"{site.url}/admin/campaigns")
    row = page.get_by_role("row").filter(has_text="Monthly news")
    expect(row.get_by_role("cell").nth(1)).to_have_text("finished")
    shoot(page, "campaigns")


def test_the_campaign_pages_on_a_phone(
    phone_page: Page, site: Site, engine: Engine, shoot: Shoot
) -> None:
    make_list(engine, "Phone readers", 3, start=5000)
    phone_page.goto(f"{site.url}/admin/campaigns/new")
    login(phone_page, site)
    phone_page.get_by_label("Name").fill("Phone check")
    phone_page.get_by_label("List").select_option("list:Phone readers")
    phone_page.get_by_label("Subject").fill("Hi {{ contact.name }}")
    phone_page.get_by_label("Markdown").check()
    phone_page.get_by_label("Body").fill("# Hello {{ contact.name }}\n\nA *short* note.")
    frame = phone_page.frame_locator("iframe[data-preview-frame]")
    expect(frame.locator("h1")).to_have_text("Hello Reader 5000")
    shoot_whole(phone_page, "campaign-compose", shoot)
    phone_page.get_by_role("button", name="Save draft").click()
    expect(phone_page.get_by_role("heading", level=1)).to_have_text("Phone check")
    shoot_whole(phone_page, "campaign-draft", shoot)
    phone_page.on("dialog", accept)
    phone_page.get_by_role("button", name="Send now").click()
    expect(phone_page.locator("[data-campaign-status]")).to_have_text("finished", timeout=60_000)
    expect(phone_page.locator("[data-progress-percent]")).to_have_text("100 %")
    shoot_whole(phone_page, "campaign-finished", shoot)
    phone_page.goto(f"{site.url}/admin/campaigns")
    expect(phone_page.get_by_role("heading", level=1)).to_have_text("Campaigns")
    shoot(phone_page, "campaigns")
