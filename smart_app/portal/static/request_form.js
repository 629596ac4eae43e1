// The request form: the correction fields are shown only while "Correct my information" is
// chosen. A file of its own because the portal's CSP allows no inline script; without it the
// fieldset simply stays visible, labelled "For corrections only".
(function () {
  "use strict";
  var kind = document.getElementById("kind");
  var fields = document.getElementById("correction-fields");
  if (!kind || !fields) {
    return;
  }
  function sync() {
    fields.hidden = kind.value !== "correction";
  }
  kind.addEventListener("change", sync);
  sync();
})();
