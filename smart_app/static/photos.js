/* The upload form's drag-and-drop zone: dropped photos become the file input's files, and the
   chosen file names are listed. Without this script the plain file input works the same. */
(function () {
  "use strict";

  function listFiles(input, list) {
    while (list.firstChild) {
      list.removeChild(list.firstChild);
    }
    Array.prototype.forEach.call(input.files || [], function (file) {
      var item = document.createElement("li");
      item.textContent = file.name;
      list.appendChild(item);
    });
  }

  function init() {
    var zone = document.getElementById("drop-zone");
    var input = document.getElementById("photo-files");
    var list = document.getElementById("selected-files");
    if (!zone || !input || !list || input.disabled) {
      return;
    }
    input.addEventListener("change", function () {
      listFiles(input, list);
    });
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (event) {
        event.preventDefault();
        zone.classList.add("dragging");
      });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function (event) {
        event.preventDefault();
        zone.classList.remove("dragging");
      });
    });
    zone.addEventListener("drop", function (event) {
      var files = event.dataTransfer && event.dataTransfer.files;
      if (!files || !files.length || input.closest("fieldset[disabled]")) {
        return;
      }
      var transfer = new DataTransfer();
      Array.prototype.forEach.call(files, function (file) {
        transfer.items.add(file);
      });
      input.files = transfer.files;
      listFiles(input, list);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
