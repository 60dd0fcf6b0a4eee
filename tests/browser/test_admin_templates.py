"""Editing a stored template in a real browser: the live preview follows the text as it is
typed (the page's own script, no reload), a template error is shown with its line, and the
saved template is listed; at laptop and phone sizes."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from support.browser_site import Site, login

from .conftest import Shoot, shoot_whole


def preview_frame_text(page: Page) -> str:
    return page.frame_locator("iframe[data-preview-frame]").locator("body").inner_text()


def test_the_preview_follows_the_template_as_it_is_typed(
    page: Page, site: Site, shoot: Shoot
) -> None:
    page.goto(f"{site.url}/admin/templates/new")
    login(page, site)
    page.get_by_label("Name").fill("welcome")
    page.get_by_label("Subject").fill("Welcome, {{ name }}")
    page.get_by_label("Sample context").fill('{"name": "Ada"}')
    html = page.locator("#template-html")
    html.fill("<h1>Hello {{ name }}</h1><p>First version.</p>")
    status = page.locator("[data-preview-status]")
    expect(status).to_have_text("Preview up to date")
    expect(page.locator("[data-preview-subject]")).to_have_text("Welcome, Ada")
    frame = page.frame_locator("iframe[data-preview-frame]")
    expect(frame.locator("h1")).to_have_text("Hello Ada")
    expect(page.locator("[data-preview-text]")).to_contain_text("First version.")

    # Typing changes the preview without a reload (the same document, the frame redrawn).
    page.evaluate("window.__sameDocument = true")
    html.fill("<h1>Hello {{ name }}</h1><p>Second version, edited.</p>")
    expect(frame.locator("p")).to_have_text("Second version, edited.")
    expect(page.locator("[data-preview-text]")).to_contain_text("Second version, edited.")
    assert page.evaluate("window.__sameDocument") is True
    shoot_whole(page, "template-edit", shoot)

    # A mistake is shown with its line, and the last good preview is not passed off as new.
    html.fill("<h1>Hello {{ name }}</h1>\n<p>{{ missing.attribute }}</p>")
    errors = page.locator("[data-preview-error-list]")
    expect(errors).to_contain_text("line 2")
    expect(errors).to_contain_text("missing")
    shoot_whole(page, "template-error", shoot)

    html.fill("<h1>Hello {{ name }}</h1><p>Saved version.</p>")
    expect(frame.locator("p")).to_have_text("Saved version.")
    page.get_by_role("button", name="Save").click()
    # The save answers with the template's page: wait for it, so the watch has its body.
    expect(page).to_have_url(f"{site.url}/admin/templates/edit?name=welcome")
    page.wait_for_load_state("load")
    page.goto(f"{site.url}/admin/templates")
    expect(page.get_by_role("link", name="welcome", exact=True)).to_be_visible()
    shoot(page, "templates")


def test_the_templates_and_api_keys_pages_on_a_phone(
    phone_page: Page, site: Site, shoot: Shoot
) -> None:
    phone_page.goto(f"{site.url}/admin/templates")
    login(phone_page, site)
    expect(phone_page.get_by_role("heading", level=1)).to_have_text("Templates")
    shoot(phone_page, "templates")
    phone_page.goto(f"{site.url}/admin/templates/new")
    phone_page.get_by_label("Name").fill("phone_note")
    phone_page.get_by_label("Subject").fill("Hi {{ name }}")
    phone_page.get_by_label("Sample context").fill('{"name": "Grace"}')
    phone_page.locator("#template-html").fill("<p>Hello {{ name }}</p>")
    frame = phone_page.frame_locator("iframe[data-preview-frame]")
    expect(frame.locator("p")).to_have_text("Hello Grace")
    shoot_whole(phone_page, "template-edit", shoot)
    phone_page.goto(f"{site.url}/admin/apikeys")
    expect(phone_page.get_by_role("heading", level=1)).to_have_text("API keys")
    shoot(phone_page, "apikeys")
