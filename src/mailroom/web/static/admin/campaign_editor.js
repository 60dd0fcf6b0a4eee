// Campaign editor: a live preview. After each pause in typing (400 ms) the form is posted to
// the preview endpoint (CSRF token in the X-CSRF-Token header) and its answer put in place:
// the recipient, subject and text with textContent, the errors as list items built with
// textContent, the HTML by pointing the sandboxed frame at the URL the answer names (the HTML
// itself never enters this page). Without this script the Preview button does the same.
(function () {
  "use strict";

  var DELAY_MS = 400;
  var LABELS = {
    name: "Name",
    audience: "List",
    subject: "Subject",
    from_email: "From",
    reply_to: "Reply-to",
    body_format: "Format",
    body: "Body",
    as_contact: "Preview as",
    settings: "Settings",
  };
  var form = document.querySelector("form[data-preview-url]");
  if (!form) {
    return;
  }
  var url = form.getAttribute("data-preview-url");
  var token = form.querySelector("input[name=csrf_token]").value;
  var status = document.querySelector("[data-preview-status]");
  var errorsBox = document.querySelector("[data-preview-errors]");
  var errorList = document.querySelector("[data-preview-error-list]");
  var to = document.querySelector("[data-preview-to]");
  var subject = document.querySelector("[data-preview-subject]");
  var text = document.querySelector("[data-preview-text]");
  var frame = document.querySelector("[data-preview-frame]");
  var noHtml = document.querySelector("[data-preview-no-html]");
  var timer = null;
  var sent = 0; // the number of the last request made: an older answer is dropped

  function say(message) {
    status.textContent = message;
  }

  function showErrors(errors) {
    while (errorList.firstChild) {
      errorList.removeChild(errorList.firstChild);
    }
    errors.forEach(function (error) {
      var item = document.createElement("li");
      var where = LABELS[error.part] || error.part;
      if (error.line !== null && error.line !== undefined) {
        where += ", line " + error.line;
      }
      item.textContent = where + ": " + error.message;
      errorList.appendChild(item);
    });
    errorsBox.hidden = errors.length === 0;
  }

  function show(answer) {
    to.textContent = answer.to === null ? "" : answer.to;
    subject.textContent = answer.subject === null ? "" : answer.subject;
    text.textContent = answer.text === null ? "" : answer.text;
    showErrors(answer.errors);
    if (answer.html_url) {
      frame.src = answer.html_url;
      frame.hidden = false;
      noHtml.hidden = true;
    } else {
      frame.hidden = true;
      noHtml.hidden = false;
    }
    say(answer.errors.length ? "Not previewed: see the errors" : "Preview up to date");
  }

  function refresh() {
    sent += 1;
    var mine = sent;
    say("Updating the preview…");
    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "X-CSRF-Token": token,
        "Content-Type": "application/x-www-form-urlencoded",
        Accept: "application/json",
      },
      body: new URLSearchParams(new FormData(form)).toString(),
    })
      .then(function (response) {
        if (response.status === 401) {
          throw new Error("signed out: sign in again, then press Preview");
        }
        if (!response.ok) {
          throw new Error("the service answered " + response.status);
        }
        return response.json();
      })
      .then(function (answer) {
        if (mine === sent) {
          show(answer);
        }
      })
      .catch(function (error) {
        if (mine === sent) {
          say("Preview not updated (" + error.message + ")");
        }
      });
  }

  function later() {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, DELAY_MS);
  }

  form.addEventListener("input", later);
  form.addEventListener("change", later); // the list and the format: a choice, not typing
})();
