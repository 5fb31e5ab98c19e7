// Gantry's web UI: live updates and the log view's extras. Every page works without it.
"use strict";
(function () {
  // Pages with a live region re-read themselves when the server says something changed
  // and swap the parts marked data-swap (forms being typed into are left alone).
  const live = document.querySelector("[data-live]");
  if (live && window.EventSource) {
    const es = new EventSource(live.dataset.live);
    let busy = false;
    es.addEventListener("change", async () => {
      if (busy) return;
      busy = true;
      try {
        const r = await fetch(location.href, { credentials: "same-origin" });
        const doc = new DOMParser().parseFromString(await r.text(), "text/html");
        const typing = document.activeElement && document.activeElement.closest("form.review");
        const parts = live.querySelectorAll("[data-swap]");
        if (parts.length === 0) {
          const fresh = doc.querySelector("[data-live]");
          if (fresh) live.innerHTML = fresh.innerHTML;
        }
        parts.forEach((el) => {
          const fresh = doc.getElementById(el.id);
          if (fresh && !(typing && el.contains(typing))) el.replaceWith(fresh);
        });
      } finally { busy = false; }
    });
  }

  // The log: live tail over SSE (the browser resumes with Last-Event-ID), groups folded.
  const log = document.getElementById("log");
  if (!log) return;
  let open = [];  // the <details> of groups left open, which take the lines streamed next
  // Groups the page's window ends inside (no end line yet) continue with the stream.
  for (let d = log.lastElementChild; d && d.matches("details.grp"); d = d.lastElementChild) {
    const lines = d.querySelectorAll(":scope > .ln");
    const last = lines[lines.length - 1];
    if (last && last.dataset.group === "end") break;
    open.push(d);
  }
  function sink() { return open.length ? open[open.length - 1] : log; }
  function append(html) {
    const t = document.createElement("template");
    t.innerHTML = html;
    const follow = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
    for (const ln of Array.from(t.content.querySelectorAll(".ln"))) {
      const g = ln.dataset.group;
      if (g === "start") {
        const d = document.createElement("details");
        d.className = "grp"; d.open = true;
        const s = document.createElement("summary");
        s.appendChild(ln); d.appendChild(s);
        sink().appendChild(d); open.push(d);
      } else {
        sink().appendChild(ln);
        if (g === "end" && open.length) open.pop();
      }
      filterLine(ln);
    }
    const none = document.getElementById("nolog");
    if (none) none.remove();
    if (follow) window.scrollTo(0, document.body.scrollHeight);
  }
  if (log.dataset.stream && window.EventSource) {
    const es = new EventSource(log.dataset.stream);
    es.addEventListener("log", (e) => append(e.data));
    es.addEventListener("end", () => es.close());
  }

  // Search within the loaded lines: matches highlighted, others hidden; "/" focuses it.
  const search = document.getElementById("logsearch");
  let needle = "";
  function filterLine(ln) {
    const text = ln.querySelector(".t").textContent.toLowerCase();
    const hit = needle !== "" && text.includes(needle);
    ln.classList.toggle("hit", hit);
    ln.classList.toggle("miss", needle !== "" && !hit);
  }
  if (search) {
    search.hidden = false;
    search.addEventListener("input", () => {
      needle = search.value.toLowerCase();
      log.querySelectorAll(".ln").forEach(filterLine);
      if (needle) log.querySelectorAll("details.grp").forEach((d) => { d.open = true; });
    });
    document.addEventListener("keydown", (e) => {
      if (e.key === "/" && document.activeElement.tagName !== "INPUT" && document.activeElement.tagName !== "TEXTAREA") {
        e.preventDefault(); search.focus();
      }
    });
  }
})();
