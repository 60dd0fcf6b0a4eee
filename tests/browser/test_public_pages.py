"""The public pages a recipient reaches from a message, in a real browser: the unsubscribe
link of a captured notification followed and confirmed, the preference centre saved, a bad
link's page; at laptop and phone sizes."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from support.browser_site import Site, login

from .conftest import Shoot


def email_choices(site: Site, address: str) -> dict[str, bool]:
    """Whether ``address`` gets each notification type by email, read through the API."""
    with site.api() as api:
        answer = api.get(f"/api/v1/preferences/{address}")
    assert answer.status_code == 200, answer.text
    return {choice["type"]: choice["email"] for choice in answer.json()["types"]}


def test_following_a_captured_unsubscribe_link_and_confirming_suppresses_the_type(
    page: Page, phone_page: Page, site: Site, shoot: Shoot
) -> None:
    for browser_page, address in ((page, "ada@example.com"), (phone_page, "bo@example.com")):
        captured = site.captured(site.notify("task.assigned", address, task="Review"))
        browser_page.goto(site.unsubscribe_link(captured))
        expect(browser_page.get_by_role("heading", level=1)).to_have_text("Unsubscribe")
        expect(browser_page.get_by_text("Tasks assigned to you")).to_be_visible()
        shoot(browser_page, "unsubscribe")
        assert email_choices(site, address)["task.assigned"] is True  # showing changed nothing

        browser_page.get_by_role("button", name="Unsubscribe").click()
        expect(browser_page.get_by_role("heading", level=1)).to_have_text("You are unsubscribed")
        shoot(browser_page, "unsubscribed")
        # A type's unsubscribe link turns that type off (a preference with its consent-log
        # entry), not an entry of the suppression list, which stops more than the type.
        assert email_choices(site, address) == {"task.assigned": False, "news.weekly": True}


def test_the_preference_centre_saves_a_choice(
    page: Page, phone_page: Page, site: Site, shoot: Shoot
) -> None:
    for browser_page, address in ((page, "cy@example.com"), (phone_page, "di@example.com")):
        captured = site.captured(site.notify("task.assigned", address, task="Review"))
        browser_page.goto(site.unsubscribe_link(captured))
        browser_page.get_by_role("link", name="Choose which emails you get instead").click()
        expect(browser_page.get_by_role("heading", level=1)).to_have_text("Email settings")
        news = browser_page.get_by_role("checkbox", name="The weekly news")
        expect(news).to_be_checked()
        news.uncheck()
        browser_page.get_by_role("button", name="Save").click()
        expect(browser_page.get_by_role("status")).to_have_text("Saved.")
        expect(browser_page.get_by_role("checkbox", name="The weekly news")).not_to_be_checked()
        shoot(browser_page, "preferences")
        assert email_choices(site, address) == {"task.assigned": True, "news.weekly": False}


def test_a_bad_link_gets_the_not_found_page(
    page: Page, phone_page: Page, site: Site, shoot: Shoot
) -> None:
    for browser_page in (page, phone_page):
        answer = browser_page.goto(f"{site.url}/unsubscribe/not-a-token")
        assert answer is not None
        assert answer.status == 404
        shoot(browser_page, "not-found")


def test_stopping_every_email_from_the_centre_is_listed_among_the_suppressions(
    page: Page, site: Site
) -> None:
    address = "ed@example.com"
    captured = site.captured(site.notify("task.assigned", address, task="Review"))
    page.goto(site.unsubscribe_link(captured))
    page.get_by_role("link", name="Choose which emails you get instead").click()
    page.get_by_role("checkbox", name="Stop every email").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Saved.")

    login(page, site)
    page.goto(f"{site.url}/admin/suppressions?q={address}")
    row = page.get_by_role("row").filter(has_text=address)
    expect(row).to_have_count(1)
    expect(row.get_by_role("cell").nth(1)).to_have_text("all")
