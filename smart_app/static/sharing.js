// The Sharing tab's "Print" button on a new link's page (the CSP allows no inline script).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const button = document.getElementById("print-link");
  if (button) {
    button.addEventListener("click", () => window.print());
  }
});
