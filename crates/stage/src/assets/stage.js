// The stage page: draws each view the run sends, and steps the run on Next (button, Space,
// Right arrow or PageDown: what presenter clickers send). The hand-out uses the same script
// without a run to talk to.
(() => {
  const $ = (id) => document.getElementById(id);
  const live = document.body.dataset.live === "true";
  let selected = null;
  let nextAt = null;
  // The step Next was pressed for: a view sent before the run heard that Next still says it
  // waits for this step, and must not offer Next for it again.
  let advancedFrom = null;
  // Milliseconds from each Next to the next arrow on screen.
  window.stageTimings = [];

  function select(n) {
    selected = n;
    document.querySelectorAll(".exchange.selected").forEach((g) => g.classList.remove("selected"));
    document.querySelectorAll(".detail").forEach((d) => (d.hidden = true));
    const arrow = document.querySelector(`.exchange[data-exchange="${n}"]`);
    const detail = $("detail-" + n);
    if (arrow) arrow.classList.add("selected");
    if (detail) {
      detail.hidden = false;
      $("hint").hidden = true;
      // The panel takes its third of the width only once there is something to show.
      document.body.classList.add("detail-open");
    }
  }

  function next() {
    if (!live || !$("next") || document.body.dataset.waiting !== "true") return;
    nextAt = performance.now();
    advancedFrom = document.body.dataset.step;
    document.body.dataset.waiting = "false";
    $("next").disabled = true;
    fetch("next", { method: "POST" });
  }

  // One vote per browser: the same id every time this browser votes.
  const voter = (() => {
    try {
      let id = localStorage.getItem("stage-voter");
      if (!id) localStorage.setItem("stage-voter", (id = Math.random().toString(36).slice(2)));
      return id;
    } catch (_) {
      return Math.random().toString(36).slice(2);
    }
  })();
  let askedChoices = null;

  const letters = "abcdefgh";

  // Predict mode, on the audience page: the open question's choices as buttons.
  function renderQuestion(view) {
    const vote = $("vote");
    if (!vote || document.body.dataset.audience !== "true") return;
    const choices = view.question || [];
    const key = JSON.stringify(choices);
    if (key !== askedChoices) {
      askedChoices = key;
      vote.innerHTML = "";
      choices.forEach((choice, i) => {
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = `${letters[i]}) ${choice}`;
        button.addEventListener("click", async () => {
          const answer = await fetch(`vote/${i}?voter=${encodeURIComponent(voter)}`, { method: "POST" });
          if (!answer.ok) return;
          vote.querySelectorAll("button").forEach((b) => b.classList.remove("chosen"));
          button.classList.add("chosen");
        });
        vote.appendChild(button);
      });
    }
    vote.hidden = choices.length === 0;
  }

  // On the presenter's page: how the room voted on the latest question, kept after the reveal.
  function renderTally(votes) {
    const tally = $("tally");
    if (!tally) return;
    tally.hidden = !votes;
    if (votes) tally.textContent = "Votes: " + votes.map((n, i) => `${letters[i]}) ${n}`).join("   ");
  }

  function render(view) {
    const before = document.querySelectorAll(".exchange").length;
    $("arrows").innerHTML = view.svg;
    $("lifelines").innerHTML = view.lifelines;
    $("exchanges").innerHTML = view.details;
    if (nextAt !== null && view.exchanges > before) {
      window.stageTimings.push(performance.now() - nextAt);
      nextAt = null;
    }
    if (view.waiting_for !== advancedFrom) advancedFrom = null;
    const waiting = view.waiting_for !== null && advancedFrom === null;
    document.body.dataset.waiting = String(waiting);
    document.body.dataset.step = view.waiting_for || "";
    document.body.dataset.finished = view.finished === null ? "" : String(view.finished);
    $("status").textContent = waiting || view.finished !== null ? view.status : "Running…";
    // The audience page has no Next: it follows the presenter's.
    if ($("next")) $("next").disabled = !waiting;
    if (view.finished !== null) $("downloads").hidden = false;
    renderQuestion(view);
    renderTally(view.votes);
    if (selected !== null) select(selected);
    const pane = $("diagram");
    pane.scrollTop = pane.scrollHeight;
  }

  document.addEventListener("click", (event) => {
    const arrow = event.target.closest(".exchange");
    if (arrow) select(arrow.dataset.exchange);
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === " " || event.key === "ArrowRight" || event.key === "PageDown") {
      event.preventDefault();
      next();
    } else if (event.key === "Enter" && event.target.closest(".exchange")) {
      select(event.target.closest(".exchange").dataset.exchange);
    } else if (event.key === "t") {
      $("theme").click();
    } else if (event.key === "f") {
      $("fit").click();
    }
  });
  $("theme").addEventListener("click", () => {
    const root = document.documentElement;
    root.dataset.theme = root.dataset.theme === "dark" ? "light" : "dark";
  });
  $("fit").addEventListener("click", () => document.body.classList.toggle("fit"));

  if (live) {
    if ($("next")) $("next").addEventListener("click", next);
    const events = new EventSource("events");
    events.onmessage = (message) => render(JSON.parse(message.data));
    events.addEventListener("votes", (message) => renderTally(JSON.parse(message.data)));
    events.onerror = () => {
      if (document.body.dataset.finished === "") $("status").textContent = "Connection to the run lost; retrying…";
    };
  }
})();
