// Live updates by short polling: every 2 s the page asks its JSON twin what changed and
// updates the rows (the list) or the state, why and upstream status (a job page). Short
// polling, not server-sent events: it holds no server thread per open page (the daemon
// serves callbacks from a small pool) and passes any proxy unchanged.
(function () {
  "use strict";
  const PERIOD_MS = 2000;

  function text(el, value) { if (el && el.textContent !== value) { el.textContent = value; } }

  function setState(el, state) {
    if (!el) { return; }
    text(el, state);
    el.className = "state state-" + state;
  }

  async function fetchJSON(url) {
    const answer = await fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" });
    if (!answer.ok) { throw new Error("HTTP " + answer.status); }
    return answer.json();
  }

  async function refreshList(table) {
    const data = await fetchJSON(table.dataset.live);
    for (const row of data.rows) {
      const tr = table.querySelector('tr[data-key="' + CSS.escape(row.key) + '"]');
      if (!tr) { continue; }
      const cells = tr.querySelectorAll("td");
      setState(cells[2].querySelector(".state"), row.state);
      text(cells[3], row.upstream);
      text(cells[4], row.updated_at.slice(0, 19).replace("T", " "));
      text(cells[5], row.note);
      tr.classList.toggle("stuck", row.stuck);
    }
    if (data.counts_html) {
      const counts = document.getElementById("counts");
      if (counts && counts.dataset.sig !== data.counts_sig) { counts.innerHTML = data.counts_html; counts.dataset.sig = data.counts_sig; }
    }
  }

  async function refreshJob(section) {
    const data = await fetchJSON(section.dataset.live);
    setState(document.getElementById("job-state"), data.state);
    text(document.getElementById("job-why"), data.why);
    text(document.getElementById("job-upstream"), data.upstream_status || "-");
    section.dataset.state = data.state;
  }

  function loop(fn, target) {
    const tick = () => fn(target).catch(() => {}).finally(() => setTimeout(tick, PERIOD_MS));
    setTimeout(tick, PERIOD_MS);
  }

  const table = document.getElementById("jobs");
  if (table && table.dataset.live) { loop(refreshList, table); }
  const job = document.getElementById("job");
  if (job && job.dataset.live) { loop(refreshJob, job); }
})();
