// A campaign's page: while the campaign is scheduled or sending, ask every two seconds where
// it is and update the progress card (bar, percent, counts) in place; when its status
// changes (it starts, finishes, pauses itself), reload the page, whose buttons and results
// follow the new status. Numbers are set with textContent only. Without this script the
// page shows the progress as it was when it loaded.
(function () {
  "use strict";

  var POLL_MS = 2000;
  var card = document.querySelector("[data-campaign-progress][data-progress-url]");
  if (!card) {
    return;
  }
  var url = card.getAttribute("data-progress-url");
  var shownStatus = card.getAttribute("data-status");
  var bar = card.querySelector("[data-progress-bar]");
  var percent = card.querySelector("[data-progress-percent]");
  var summary = card.querySelector("[data-progress-summary]");
  var indicator = card.querySelector("[data-live-indicator]");
  var indicatorText = card.querySelector("[data-live-text]");
  var stopped = false;
  var number = new Intl.NumberFormat("en");

  function say(text, state) {
    if (!indicator) {
      return;
    }
    indicator.hidden = false;
    indicator.setAttribute("data-state", state);
    indicatorText.textContent = text;
  }

  function count(key, value) {
    var element = card.querySelector('[data-count="' + key + '"]');
    if (element) {
      element.textContent = number.format(value);
    }
  }

  function show(answer) {
    var counts = answer.counts;
    bar.max = Math.max(answer.expected, 1);
    bar.value = answer.expected ? answer.settled : 0;
    bar.textContent = answer.percent + " %";
    percent.textContent = answer.percent + " %";
    summary.textContent =
      number.format(answer.settled) + " of " + number.format(answer.expected) +
      " recipients have an outcome.";
    count("sent", counts.sent);
    count("failed", counts.failed);
    count("suppressed", counts.suppressed);
    count("skipped", counts.skipped);
    count("remaining", answer.remaining);
  }

  function poll() {
    if (stopped) {
      return;
    }
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 401) {
          stopped = true;
          say("Signed out: sign in again to follow the campaign", "stopped");
          return null;
        }
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (answer) {
        if (!answer) {
          return;
        }
        show(answer);
        if (answer.status !== shownStatus) {
          stopped = true;
          say("The campaign is " + answer.status + ": reloading", "stale");
          window.location.reload();
          return;
        }
        say("Live: updated every 2 seconds", "live");
      })
      .catch(function () {
        say("Not updating (the service did not answer); retrying", "retrying");
      })
      .then(function () {
        if (!stopped) {
          window.setTimeout(poll, POLL_MS);
        }
      });
  }

  say("Live: updated every 2 seconds", "live");
  window.setTimeout(poll, POLL_MS);
})();
