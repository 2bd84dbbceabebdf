// Ask before doing something that cannot be undone (kill an actor, stop a job), in the page's modal <dialog>
// (focus moves into it, Escape cancels, focus returns to the button that opened it).

export function confirmAction(title, text, okLabel = "Confirm") {
  const dlg = document.getElementById("confirm");
  const opener = document.activeElement;
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = okLabel;
  dlg.returnValue = "";
  return new Promise((resolve) => {
    dlg.addEventListener("close", () => {
      if (opener && opener.focus) opener.focus();
      resolve(dlg.returnValue === "ok");
    }, { once: true });
    dlg.showModal();
  });
}
