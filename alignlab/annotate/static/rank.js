// Drag-to-rank on a ranking task: drag an answer card (or press its ↑ ↓ buttons, which also work on phones) and the
// rank selects follow the cards' order, top = 1. Picking ranks by hand is checked in the page: two answers with the
// same rank are marked and the form is not sent until every rank differs (the server checks again).
(() => {
  const list = document.querySelector("[data-rank-list]");
  if (!list) return;
  const form = list.closest("form");
  const error = form.querySelector(".rank-error");
  const cards = () => Array.from(list.querySelectorAll(".candidate"));

  function ranksFromOrder() {
    cards().forEach((card, i) => { card.querySelector("select").value = String(i + 1); });
    check();
  }

  function check() {
    const selects = cards().map((card) => card.querySelector("select"));
    const counts = {};
    selects.forEach((s) => { counts[s.value] = (counts[s.value] || 0) + 1; });
    let clash = false;
    selects.forEach((s) => {
      const dup = counts[s.value] > 1;
      s.classList.toggle("dup", dup);
      s.setAttribute("aria-invalid", dup ? "true" : "false");
      clash = clash || dup;
    });
    error.hidden = !clash;
    return !clash;
  }

  let dragged = null;
  list.addEventListener("dragstart", (event) => {
    dragged = event.target.closest(".candidate");
    if (!dragged) return;
    dragged.classList.add("dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", "");
  });
  list.addEventListener("dragover", (event) => {
    if (!dragged) return;
    event.preventDefault();
    const over = event.target.closest(".candidate");
    if (!over || over === dragged) return;
    const box = over.getBoundingClientRect();
    list.insertBefore(dragged, event.clientY < box.top + box.height / 2 ? over : over.nextSibling);
  });
  list.addEventListener("drop", (event) => { event.preventDefault(); });
  list.addEventListener("dragend", () => {
    if (dragged) dragged.classList.remove("dragging");
    dragged = null;
    ranksFromOrder();
  });
  list.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-move]");
    if (!button) return;
    const card = button.closest(".candidate");
    if (button.dataset.move === "up" && card.previousElementSibling) list.insertBefore(card, card.previousElementSibling);
    if (button.dataset.move === "down" && card.nextElementSibling) list.insertBefore(card.nextElementSibling, card);
    ranksFromOrder();
    button.focus();
  });
  list.addEventListener("change", check);
  form.addEventListener("submit", (event) => { if (!check()) event.preventDefault(); });
})();
