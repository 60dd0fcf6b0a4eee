"""The admin's flows in a real browser: a test email sent from the Status page and found in
Captured mail and Messages, a message's HTML preview that runs no script, a captured
unsubscribe link followed and seen on the Suppressions page, a suppression added and removed;
every page shot at laptop and phone sizes."""

from __future__ import annotations

import re
from collections.abc import Sequence

from playwright.sync_api import Dialog, Page, expect

from support.browser import PageWatch
from support.browser_site import Site, login

from .conftest import Shoot, shoot_whole


def signed_in(site: Site, *pages: Page) -> None:
    for browser_page in pages:
        login(browser_page, site)


def shoot_both(pages: Sequence[Page], url: str, name: str, shoot: Shoot) -> None:
    """Open ``url`` on each page (laptop, phone) and shoot it."""
    for browser_page in pages:
        answer = browser_page.goto(url)
        assert answer is not None
        assert answer.ok, f"{url}: {answer.status}"
        shoot_whole(browser_page, name, shoot)


def test_a_test_email_from_the_status_page_is_in_captured_mail_and_messages(
    page: Page, phone_page: Page, site: Site, shoot: Shoot
) -> None:
    signed_in(site, page, phone_page)
    address = "tester@example.com"
    page.goto(f"{site.url}/admin/")
    # Capturing while the settings name a relay: the way to use it is the transport setting.
    transport = page.get_by_role("region", name="Transport")
    expect(transport).to_contain_text("The settings name a relay, smtp.relay.example:587")
    expect(transport).to_contain_text("set MAILROOM_TRANSPORT=smtp and restart")
    shoot(page, "status")
    page.get_by_label("Send to").fill(address)
    page.get_by_role("button", name="Send test email").click()
    report = page.get_by_role("status").filter(has_text="Test email sent")
    expect(report).to_be_visible()
    expect(report).to_contain_text("set MAILROOM_TRANSPORT=smtp, then run this again")
    expect(report.get_by_role("link", name=re.compile(r"^message #\d+$"))).to_have_count(2)
    shoot(page, "status-test-sent")
    shoot_both([phone_page], f"{site.url}/admin/", "status", shoot)

    # Captured mail: both messages in the list, newest first; one of them, tab by tab.
    captured_list = f"{site.url}/admin/captured?q={address}"
    shoot_both([page, phone_page], captured_list, "captured-list", shoot)
    rows = page.locator("tbody[data-captured-rows] tr")
    expect(rows).to_have_count(2)
    rows.first.get_by_role("link").click()
    expect(page.get_by_role("navigation", name="Views of the message")).to_be_visible()
    detail = page.url.split("?")[0]
    tabs = {"html": "HTML", "text": "Text", "headers": "Headers", "raw": "Raw"}
    for key, label in tabs.items():
        page.get_by_role("navigation", name="Views of the message").get_by_role(
            "link", name=label
        ).click()
        expect(page).to_have_url(f"{detail}?tab={key}")
        current = page.locator(".tabs a[aria-current=page]")
        expect(current).to_have_text(label)
        if key == "html":  # the test email is text only; a preview is the next test's
            expect(page.locator(".captured-view")).to_contain_text("has no HTML part")
        elif key == "headers":
            expect(page.get_by_role("cell", name="To", exact=True)).to_be_visible()
        elif key == "text":
            expect(page.locator(".captured-view")).to_contain_text("test email")
        else:
            expect(page.locator(".captured-view")).to_contain_text(f"To: {address}")
        shoot(page, f"captured-{key}")
        shoot_both([phone_page], page.url, f"captured-{key}", shoot)
    download = page.get_by_role("link", name="Download .eml").get_attribute("href")
    assert download is not None
    eml = page.request.get(f"{site.url}{download}")
    assert eml.status == 200
    assert eml.headers["content-type"].startswith("message/rfc822")
    assert "attachment" in eml.headers["content-disposition"]
    assert f"To: {address}" in eml.text()

    # Messages: the search by recipient finds both test messages (recorded in the outbox, in
    # the stream "test"), each with its attempt.
    page.goto(f"{site.url}/admin/messages")
    page.get_by_label("Recipient").fill(address)
    page.get_by_role("button", name="Search").click()
    found = page.get_by_role("row").filter(has_text=address)
    expect(found).to_have_count(2)
    expect(found.filter(has_text="Mailroom test email 1 of 2")).to_have_count(1)
    expect(found.filter(has_text="Mailroom test email 2 of 2")).to_have_count(1)
    shoot(page, "messages-search")
    shoot_both([phone_page], page.url, "messages-search", shoot)
    found.first.get_by_role("link").first.click()
    attempts = page.locator("section.card").filter(has=page.get_by_role("heading", name="Attempts"))
    expect(attempts.get_by_role("row").filter(has_text=address)).to_have_count(1)
    expect(attempts.locator(".badge-sent")).to_have_count(1)
    stream = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="Stream"))
    expect(stream.get_by_role("cell")).to_have_text("test")
    shoot_whole(page, "message-detail", shoot)
    shoot_both([phone_page], page.url, "message-detail", shoot)


SCRIPTED_HTML = (
    "<html><head><title>Untouched</title></head><body>"
    "<p id=greeting>Hello from the preview</p>"
    "<script>document.title = 'script ran';"
    " document.getElementById('greeting').textContent = 'script ran';"
    " parent.document.body.setAttribute('data-pwned', 'yes');</script>"
    "</body></html>"
)


def test_a_message_preview_runs_no_script(
    page: Page, phone_page: Page, site: Site, shoot: Shoot, watches: dict[int, PageWatch]
) -> None:
    with site.api() as api:
        answer = api.post(
            "/api/v1/messages",
            json={
                "to": ["scripted@example.com"],
                "subject": "A message with a script",
                "html": SCRIPTED_HTML,
                "text": "Hello from the preview",
            },
        )
    assert answer.status_code == 201, answer.text
    message_pk = answer.json()["id"]
    captured = site.captured(message_pk)
    signed_in(site, page, phone_page)
    for url, name in (
        (f"{site.url}/admin/messages/{message_pk}", "message-scripted"),
        (f"{site.url}/admin/captured/{captured['id']}?tab=html", "captured-scripted"),
    ):
        for browser_page in (page, phone_page):
            browser_page.goto(url)
            frame = browser_page.locator("iframe.message-preview")
            expect(frame).to_have_attribute("sandbox", "")
            inside = browser_page.frame_locator("iframe.message-preview")
            expect(inside.locator("#greeting")).to_have_text("Hello from the preview")
            (content,) = [f for f in browser_page.frames if f != browser_page.main_frame]
            assert content.title() == "Untouched"
            assert browser_page.locator("body[data-pwned]").count() == 0
            # Chromium says so itself: the one console line the sandbox leaves, taken out of
            # the watch's list (any other error still fails the test).
            watch = watches[id(browser_page)]
            blocked = [e for e in watch.console_errors if e.startswith("Blocked script")]
            assert len(blocked) == 1, watch.console_errors
            assert "'allow-scripts'" in blocked[0]
            watch.console_errors.remove(blocked[0])
            shoot_whole(browser_page, name, shoot)


def test_a_followed_unsubscribe_link_is_seen_on_the_suppressions_page(
    page: Page, phone_page: Page, site: Site, shoot: Shoot
) -> None:
    address = "leaver@example.com"
    captured = site.captured(site.notify("task.assigned", address, task="Review"))
    page.goto(site.unsubscribe_link(captured))
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are unsubscribed")

    signed_in(site, page, phone_page)
    search = f"{site.url}/admin/suppressions?q={address}"
    shoot_both([page, phone_page], search, "suppressions-opted-out", shoot)
    opted_out = page.get_by_role("region", name="Opted out of a notification type")
    row = opted_out.get_by_role("row").filter(has_text=address)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("task.assigned")
    expect(row).to_contain_text("Unsubscribe link")
    row.get_by_role("link", name=address).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(address)
    preferences = page.get_by_role("region", name="Email preferences")
    expect(preferences.get_by_role("row").filter(has_text="task.assigned")).to_contain_text("off")
    shoot(page, "suppression-opted-out-detail")
    shoot_both([phone_page], page.url, "suppression-opted-out-detail", shoot)


def test_a_suppression_added_on_the_page_is_listed_then_removed(
    page: Page, phone_page: Page, site: Site, shoot: Shoot
) -> None:
    address = "blocked@example.com"
    signed_in(site, page, phone_page)
    shoot_both([page, phone_page], f"{site.url}/admin/suppressions", "suppressions", shoot)
    form = page.get_by_role("region", name="Add an address")
    form.get_by_label("Address").fill(address)
    form.get_by_label("Scope").fill("type:news.weekly")
    form.get_by_label("Reason").select_option("manual")
    form.get_by_label("Expires").fill("+30d")
    form.get_by_label("Note").fill("Asked by phone")
    form.get_by_role("button", name="Suppress").click()
    expect(page.get_by_role("status")).to_have_text(
        f"Suppressed {address} for type:news.weekly (manual)."
    )
    listed = page.locator("table.suppressions-list").get_by_role("row").filter(has_text=address)
    expect(listed).to_have_count(1)
    expect(listed).to_contain_text("Asked by phone")
    expect(listed).to_contain_text("Admin")
    shoot(page, "suppressions-added")

    listed.get_by_role("link", name=address).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(address)
    history = page.get_by_role("region", name="Consent history")
    expect(history.get_by_role("row").filter(has_text="suppressed")).to_have_count(1)
    shoot_both([page, phone_page], page.url, "suppression-detail", shoot)

    dialogs: list[str] = []

    def accept(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    page.get_by_role("button", name="Remove for type:news.weekly").click()
    expect(page.get_by_role("status")).to_have_text(
        f"Removed {address} from the suppression list for type:news.weekly."
    )
    assert len(dialogs) == 1
    assert address in dialogs[0]
    expect(page.get_by_text("Not suppressed now")).to_be_visible()
    expect(history.get_by_role("row").filter(has_text="unsuppressed")).to_have_count(1)
    shoot(page, "suppression-removed")
    page.goto(f"{site.url}/admin/suppressions?q={address}")
    expect(page.locator("table.suppressions-list")).to_have_count(0)
