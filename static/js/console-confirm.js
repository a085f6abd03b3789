// Console buttons with `data-confirm` ask before they submit (no inline handlers: the
// portal's Content-Security-Policy runs no inline script).
document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-confirm]");
  if (button && !window.confirm(button.dataset.confirm)) event.preventDefault();
});
