"""Signing in to the admin pages, in a real browser: the login page, the landing page, a wrong
password, signing out, a form without its CSRF token; at laptop and phone sizes."""

from __future__ import annotations

from urllib.parse import quote

from playwright.sync_api import Page, expect

from support.browser_site import Site, login

from .conftest import Shoot


def landed(page: Page, site: Site) -> None:
    """The page is the admin's landing page, signed in."""
    expect(page).to_have_url(f"{site.url}/admin/")
    expect(page.locator("body.signed-in")).to_have_count(1)


def test_signing_in_from_a_page_lands_on_it_and_shows_the_navigation(
    page: Page, phone_page: Page, site: Site, shoot: Shoot
) -> None:
    for browser_page in (page, phone_page):
        browser_page.goto(f"{site.url}/admin/")
        expect(browser_page).to_have_url(f"{site.url}/admin/login?next=/admin/")
        expect(browser_page.get_by_role("heading", level=1)).to_have_text("Sign in")
        shoot(browser_page, "login")
        login(browser_page, site)
        landed(browser_page, site)
        shoot(browser_page, "landing")
    # On a phone the navigation folds into a menu that opens without a script.
    nav = phone_page.get_by_role("navigation", name="Main (menu)")
    expect(nav).to_be_hidden()
    phone_page.get_by_text("Menu", exact=True).click()
    expect(nav).to_be_visible()
    shoot(phone_page, "landing-menu")


def test_signing_in_goes_on_to_the_next_admin_page_and_nowhere_else(page: Page, site: Site) -> None:
    page.goto(f"{site.url}/admin/?from=bookmark")
    login(page, site)
    expect(page).to_have_url(f"{site.url}/admin/?from=bookmark")
    for elsewhere in ("https://evil.example/", "//evil.example/", "/api/v1/status"):
        page.context.clear_cookies()
        page.goto(f"{site.url}/admin/login?next={quote(elsewhere, safe='')}")
        login(page, site)
        landed(page, site)


def test_a_wrong_password_is_refused_with_a_message(
    page: Page, phone_page: Page, site: Site, shoot: Shoot
) -> None:
    for browser_page in (page, phone_page):
        with browser_page.expect_response(lambda r: r.request.method == "POST") as refusal:
            login(browser_page, site, password="not-" + site.admin_password)
        assert refusal.value.status == 401
        expect(browser_page.get_by_role("alert")).to_have_text("Wrong user name or password.")
        expect(browser_page.get_by_label("User name")).to_have_value(site.admin_user)
        expect(browser_page.get_by_label("Password")).to_have_value("")
        shoot(browser_page, "login-refused")
        browser_page.goto(f"{site.url}/admin/")
        expect(browser_page).to_have_url(f"{site.url}/admin/login?next=/admin/")


def test_signing_out_ends_the_session(page: Page, phone_page: Page, site: Site) -> None:
    for browser_page in (page, phone_page):
        login(browser_page, site)
        landed(browser_page, site)
        if browser_page is phone_page:
            browser_page.get_by_text("Menu", exact=True).click()
        browser_page.get_by_role("button", name="Sign out").click()
        expect(browser_page).to_have_url(f"{site.url}/admin/login")
        browser_page.goto(f"{site.url}/admin/")
        expect(browser_page).to_have_url(f"{site.url}/admin/login?next=/admin/")


def test_a_post_without_its_csrf_token_is_refused(
    page: Page, phone_page: Page, site: Site, shoot: Shoot
) -> None:
    # Straight from the signed-in browser (its cookies), no token, a wrong one: refused.
    login(page, site)
    forms: list[dict[str, str | float | bool]] = [{}, {"csrf_token": "forged"}]
    for form in forms:
        answer = page.request.post(f"{site.url}/admin/logout", form=form, max_redirects=0)
        assert answer.status == 403, answer.text()
        site.watch.check_text(answer.text(), "the answer to a forged form")
    page.reload()
    landed(page, site)  # still signed in: the refused sign-out did nothing

    # A form of the page sent without its token, as a planted form would be.
    for browser_page in (page, phone_page):
        if browser_page is phone_page:
            login(browser_page, site)
        browser_page.locator("input[name=csrf_token]").evaluate_all(
            "inputs => inputs.forEach(input => input.remove())"
        )
        if browser_page is phone_page:
            browser_page.get_by_text("Menu", exact=True).click()
        with browser_page.expect_response(f"{site.url}/admin/logout") as refusal:
            browser_page.get_by_role("button", name="Sign out").click()
        assert refusal.value.status == 403
        expect(browser_page.get_by_role("heading", level=1)).to_have_text("This form has expired")
        shoot(browser_page, "form-expired")
        browser_page.goto(f"{site.url}/admin/")
        landed(browser_page, site)
