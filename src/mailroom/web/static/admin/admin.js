// Mailroom admin: the one global behaviour. A submit button with data-confirm="..." asks
// before its form is sent. Everything else works without JavaScript.
"use strict";

document.addEventListener("submit", (event) => {
  const button = event.submitter;
  if (!(button instanceof HTMLElement)) {
    return;
  }
  const question = button.dataset.confirm;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
