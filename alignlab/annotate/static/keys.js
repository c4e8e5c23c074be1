// Keyboard shortcuts on a task page (the hint under the form says which). No other script runs on the platform.
document.addEventListener("keydown", (event) => {
  const form = document.querySelector("form[data-task]");
  if (!form || event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target.matches("textarea, select, input[type=text], input[type=number]")) return;
  const kind = form.dataset.task;
  if (event.key === "Enter") {
    event.preventDefault();
    form.requestSubmit();
    return;
  }
  if (kind === "pair") {                     // 1 / 2 / 3: A better, tie, B better on every criterion
    const value = {"1": "A", "2": "tie", "3": "B"}[event.key];
    if (!value) return;
    form.querySelectorAll(`input[type=radio][value="${value}"]`).forEach((radio) => { radio.checked = true; });
    event.preventDefault();
  } else if (kind === "best") {              // N: answer N is the best
    const radios = form.querySelectorAll("input[name=best]");
    const i = parseInt(event.key, 10) - 1;
    if (i >= 0 && i < radios.length) { radios[i].checked = true; event.preventDefault(); }
  } else if (kind === "rank") {              // the ranks of the answers, top to bottom, one digit each
    const selects = form.querySelectorAll("select[name^=rank_]");
    const rank = parseInt(event.key, 10);
    if (rank >= 1 && rank <= selects.length) {
      const next = parseInt(form.dataset.next || "0", 10);
      selects[next % selects.length].value = String(rank);
      selects[next % selects.length].dispatchEvent(new Event("change", {bubbles: true}));   // rank.js re-checks
      form.dataset.next = String(next + 1);
      event.preventDefault();
    }
  }
});
