/* The signature pad of the Consents page: draw on canvas#signature-pad with a finger, stylus
   or mouse (pointer events); the drawing is exported as a PNG data URL into the hidden
   input#signature-data. Without JavaScript the typed-signature field is the way to sign. */
(function () {
  "use strict";

  function start() {
    var canvas = document.getElementById("signature-pad");
    var field = document.getElementById("signature-data");
    var clear = document.getElementById("signature-clear");
    if (!canvas || !field || !canvas.getContext) {
      return;
    }
    document.documentElement.classList.add("has-js");
    var context = canvas.getContext("2d");
    var drawing = false;
    var marked = false;
    var last = null;

    context.lineWidth = 3;
    context.lineCap = "round";
    context.lineJoin = "round";
    context.strokeStyle = "#000";

    function point(event) {
      var box = canvas.getBoundingClientRect();
      return {
        x: (event.clientX - box.left) * (canvas.width / box.width),
        y: (event.clientY - box.top) * (canvas.height / box.height)
      };
    }

    function disabled() {
      var fieldset = canvas.closest("fieldset[disabled]");
      return fieldset !== null;
    }

    function save() {
      field.value = marked ? canvas.toDataURL("image/png") : "";
      canvas.classList.toggle("signed", marked);
    }

    canvas.addEventListener("pointerdown", function (event) {
      if (disabled()) {
        return;
      }
      event.preventDefault();
      drawing = true;
      last = point(event);
      if (canvas.setPointerCapture) {
        canvas.setPointerCapture(event.pointerId);
      }
      // A dot for a tap without movement.
      context.beginPath();
      context.arc(last.x, last.y, context.lineWidth / 2, 0, Math.PI * 2);
      context.fill();
      marked = true;
    });

    canvas.addEventListener("pointermove", function (event) {
      if (!drawing) {
        return;
      }
      event.preventDefault();
      var next = point(event);
      context.beginPath();
      context.moveTo(last.x, last.y);
      context.lineTo(next.x, next.y);
      context.stroke();
      last = next;
      marked = true;
    });

    function stop(event) {
      if (!drawing) {
        return;
      }
      drawing = false;
      if (canvas.releasePointerCapture && event.pointerId !== undefined) {
        try {
          canvas.releasePointerCapture(event.pointerId);
        } catch (ignored) {
          /* the capture was already released */
        }
      }
      save();
    }

    canvas.addEventListener("pointerup", stop);
    canvas.addEventListener("pointercancel", stop);
    canvas.addEventListener("pointerleave", stop);

    if (clear) {
      clear.addEventListener("click", function () {
        context.clearRect(0, 0, canvas.width, canvas.height);
        marked = false;
        save();
      });
    }

    var form = canvas.closest("form");
    if (form) {
      form.addEventListener("submit", save);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
