// Captured mail: while the first page of the list is open, ask every two seconds what was
// captured since the newest row shown, and put it on top. Rows are built with textContent
// only: a subject or an address is text, never markup. Without this script the page works
// as it is, with its Refresh link.
(function () {
  "use strict";

  var POLL_MS = 2000;
  var rows = document.querySelector("[data-captured-rows][data-latest-url]");
  if (!rows) {
    return;
  }
  var indicator = document.querySelector("[data-live-indicator]");
  var indicatorText = document.querySelector("[data-live-text]");
  var table = document.querySelector("[data-captured-table]");
  var empty = document.querySelector("[data-captured-empty]");
  var after = Number(rows.getAttribute("data-after")) || 0;
  var search = rows.getAttribute("data-search") || "";
  var detailBase = rows.getAttribute("data-detail-base");
  var latestUrl = rows.getAttribute("data-latest-url");
  var stopped = false;

  function say(text, state) {
    if (!indicator) {
      return;
    }
    indicator.hidden = false;
    indicator.setAttribute("data-state", state);
    indicatorText.textContent = text;
  }

  function cell(text, className) {
    var td = document.createElement("td");
    td.textContent = text;
    if (className) {
      td.className = className;
    }
    return td;
  }

  function rowFor(item) {
    var tr = document.createElement("tr");
    tr.className = "captured-new";
    var first = document.createElement("td");
    var link = document.createElement("a");
    link.href = detailBase + encodeURIComponent(String(item.id));
    link.textContent = item.subject || "(no subject)";
    first.appendChild(link);
    tr.appendChild(first);
    tr.appendChild(cell(item.mail_from, "mono"));
    tr.appendChild(cell(item.recipients.join(", "), "mono"));
    tr.appendChild(cell(item.captured_at));
    tr.appendChild(cell(item.size));
    return tr;
  }

  function show(answer) {
    var items = answer.items;
    // Newest first in the answer: insert the oldest first so the newest ends on top.
    for (var i = items.length - 1; i >= 0; i -= 1) {
      rows.insertBefore(rowFor(items[i]), rows.firstChild);
      after = Math.max(after, items[i].id);
    }
    if (items.length > 0) {
      table.hidden = false;
      empty.hidden = true;
    }
    if (answer.more) {
      stopped = true;
      say("More mail arrived than fits here: refresh the page", "stale");
    }
  }

  function poll() {
    if (stopped) {
      return;
    }
    var url = latestUrl + "?after=" + encodeURIComponent(String(after));
    if (search) {
      url += "&q=" + encodeURIComponent(search);
    }
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 401) {
          stopped = true;
          say("Signed out: sign in again to follow new mail", "stopped");
          return null;
        }
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (answer) {
        if (answer) {
          if (!stopped) {
            say("Live: new mail appears here as it is captured", "live");
          }
          show(answer);
        }
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

  say("Live: new mail appears here as it is captured", "live");
  window.setTimeout(poll, POLL_MS);
})();
