// The physician's viewer of a SMART Health Link: reads the link from the URL fragment (or a
// pasted link), asks the service for the manifest, decrypts every file in this browser with
// Web Crypto and shows the patient summary, the records and the photos.
//
// The key is in the fragment, which browsers never send; this script sends only the
// recipient's name and the passcode (the manifest request of the SHL specification), never the
// key or the link. Everything shown is built with createElement/textContent; the one piece of
// markup a document carries (its sections' narrative) is rebuilt through an allowlist, never
// given to innerHTML. A file of its own because the service's CSP allows no inline script.
(function () {
  "use strict";

  var PREFIX = "shlink:/";
  var EMBEDDED_LENGTH_MAX = 1000000; // larger files come as short-lived location URLs
  var PHOTO_TYPES = { "image/jpeg": true, "image/png": true, "image/webp": true };
  var LOOPBACK = { localhost: true, "127.0.0.1": true, "[::1]": true };

  var state = { payload: null, key: null };
  var $ = function (id) {
    return document.getElementById(id);
  };

  // ---------------------------------------------------------------- small helpers

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined && text !== null) {
      node.textContent = String(text);
    }
    return node;
  }

  function show(id, visible) {
    $(id).hidden = !visible;
  }

  function say(message) {
    $("status").textContent = message || "";
    show("status", Boolean(message));
  }

  function fail(message) {
    say("");
    $("problem").textContent = message || "";
    show("problem", Boolean(message));
  }

  function base64urlBytes(text) {
    if (typeof text !== "string" || !/^[A-Za-z0-9_-]*$/.test(text)) {
      throw new Error("not base64url");
    }
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) {
      b64 += "=";
    }
    var raw = atob(b64);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) {
      bytes[i] = raw.charCodeAt(i);
    }
    return bytes;
  }

  function asciiBytes(text) {
    var bytes = new Uint8Array(text.length);
    for (var i = 0; i < text.length; i++) {
      bytes[i] = text.charCodeAt(i) & 0x7f;
    }
    return bytes;
  }

  function when(epochSeconds) {
    return new Date(epochSeconds * 1000).toLocaleString(undefined, {
      dateStyle: "medium",
      timeStyle: "short",
    });
  }

  function fhirDate(value) {
    if (typeof value !== "string") {
      return "";
    }
    return value.length > 10 ? value.slice(0, 16).replace("T", " ") : value;
  }

  // ---------------------------------------------------------------- the link

  // The payload of a link, or an Error whose message is for the reader.
  function parseLink(text) {
    var at = typeof text === "string" ? text.indexOf(PREFIX) : -1;
    if (at < 0) {
      throw new Error("This is not a SMART Health Link (it has no shlink:/ part).");
    }
    var encoded = text.slice(at + PREFIX.length).trim();
    var payload;
    try {
      payload = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(base64urlBytes(encoded)));
    } catch (e) {
      throw new Error("The link is damaged (it could not be read). Copy it again in full.");
    }
    if (!payload || typeof payload !== "object") {
      throw new Error("The link is damaged (it could not be read). Copy it again in full.");
    }
    if (payload.v !== undefined && payload.v !== 1) {
      throw new Error("This link uses a version this viewer does not know (v " + payload.v + ").");
    }
    var flag = payload.flag === undefined ? "" : payload.flag;
    if (typeof flag !== "string" || !/^[LPU]*$/.test(flag)) {
      throw new Error("The link is damaged (unknown flags).");
    }
    if (flag.indexOf("U") >= 0 && flag.indexOf("P") >= 0) {
      throw new Error("The link is damaged (a single-file link cannot have a passcode).");
    }
    var url;
    try {
      url = new URL(payload.url);
    } catch (e) {
      throw new Error("The link is damaged (no address).");
    }
    if (url.protocol !== "https:" && !(url.protocol === "http:" && LOOPBACK[url.hostname])) {
      throw new Error("The link is not safe to open (its address is not https).");
    }
    if (typeof payload.key !== "string" || payload.key.length !== 43) {
      throw new Error("The link is damaged (its key is missing or cut).");
    }
    var key;
    try {
      key = base64urlBytes(payload.key);
    } catch (e) {
      throw new Error("The link is damaged (its key is missing or cut).");
    }
    if (key.length !== 32) {
      throw new Error("The link is damaged (its key is missing or cut).");
    }
    if (payload.exp !== undefined && typeof payload.exp !== "number") {
      throw new Error("The link is damaged (its expiry is not a time).");
    }
    if (payload.label !== undefined && typeof payload.label !== "string") {
      throw new Error("The link is damaged (its label is not text).");
    }
    return {
      url: url,
      keyBytes: key,
      exp: payload.exp,
      flag: flag,
      label: payload.label ? payload.label.slice(0, 80) : "",
    };
  }

  function expired(payload) {
    return payload.exp !== undefined && payload.exp * 1000 <= Date.now();
  }

  // ---------------------------------------------------------------- JWE (alg dir, A256GCM)

  async function decrypt(jwe, key) {
    var parts = typeof jwe === "string" ? jwe.trim().split(".") : [];
    if (parts.length !== 5 || parts[1] !== "") {
      throw new Error("a file is not a compact JWE with a direct key");
    }
    var header = JSON.parse(new TextDecoder().decode(base64urlBytes(parts[0])));
    if (header.alg !== "dir" || header.enc !== "A256GCM") {
      throw new Error("a file uses an encryption this viewer does not know");
    }
    var iv = base64urlBytes(parts[2]);
    var ciphertext = base64urlBytes(parts[3]);
    var tag = base64urlBytes(parts[4]);
    if (iv.length !== 12 || tag.length !== 16) {
      throw new Error("a file's encryption is damaged");
    }
    // Web Crypto takes the tag appended to the ciphertext; the AAD is the ASCII of the
    // protected header as it appears in the JWE (RFC 7516 section 5.2).
    var sealed = new Uint8Array(ciphertext.length + tag.length);
    sealed.set(ciphertext, 0);
    sealed.set(tag, ciphertext.length);
    var plain;
    try {
      plain = await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: iv, additionalData: asciiBytes(parts[0]), tagLength: 128 },
        key,
        sealed
      );
    } catch (e) {
      throw new Error("a file could not be decrypted with this link's key");
    }
    if (header.zip === "DEF") {
      var stream = new Blob([plain]).stream().pipeThrough(new DecompressionStream("deflate-raw"));
      plain = await new Response(stream).arrayBuffer();
    } else if (header.zip !== undefined) {
      throw new Error("a file is compressed in a way this viewer does not know");
    }
    return { contentType: header.cty || "", text: new TextDecoder("utf-8").decode(plain) };
  }

  // ---------------------------------------------------------------- talking to the service

  function retryAfter(response) {
    var value = response.headers.get("Retry-After");
    if (!value) {
      return null;
    }
    var seconds = /^\d+$/.test(value) ? Number(value) : Math.ceil((Date.parse(value) - Date.now()) / 1000);
    return isFinite(seconds) && seconds > 0 ? seconds : null;
  }

  function refusal(response, body) {
    if (response.status === 401) {
      var left = body && typeof body.remainingAttempts === "number" ? body.remainingAttempts : null;
      if (left === 0) {
        return "The passcode is not right, and no attempts are left: this link is now inactive. Ask the client or the spa for a new link.";
      }
      if (left === null) {
        return "The passcode is not right.";
      }
      return "The passcode is not right. " + left + (left === 1 ? " attempt" : " attempts") + " left.";
    }
    if (response.status === 404) {
      return "This link is no longer active. Ask the client or the spa for a new one.";
    }
    if (response.status === 429) {
      var wait = retryAfter(response);
      return wait
        ? "Too many attempts. Wait " + wait + (wait === 1 ? " second" : " seconds") + " and try again."
        : "Too many attempts. Wait a moment and try again.";
    }
    if (response.status === 400) {
      return "The link service refused the request (400). Check your name and the passcode, then try again.";
    }
    return "The link service could not answer (" + response.status + "). Try again later.";
  }

  async function readJson(response) {
    try {
      return await response.json();
    } catch (e) {
      return null;
    }
  }

  var FETCH_OPTIONS = { credentials: "omit", referrerPolicy: "no-referrer", cache: "no-store" };

  // The encrypted files (compact JWE strings) of the link, or null after saying why not.
  async function fetchFiles(payload, recipient, passcode) {
    var response;
    if (payload.flag.indexOf("U") >= 0) {
      // A single-file link: GET the file itself (no manifest, never a passcode).
      var direct = new URL(payload.url.href);
      direct.searchParams.set("recipient", recipient);
      response = await fetch(direct.href, FETCH_OPTIONS);
      if (!response.ok) {
        fail(refusal(response, null));
        return null;
      }
      return [{ contentType: "application/fhir+json", jwe: await response.text() }];
    }
    var request = { recipient: recipient, embeddedLengthMax: EMBEDDED_LENGTH_MAX };
    if (payload.flag.indexOf("P") >= 0) {
      request.passcode = passcode;
    }
    response = await fetch(
      payload.url.href,
      Object.assign({}, FETCH_OPTIONS, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(request),
      })
    );
    var body = await readJson(response);
    if (!response.ok) {
      fail(refusal(response, body));
      if (response.status === 429) {
        pause(retryAfter(response) || 5);
      } else if (response.status === 401) {
        $("passcode").focus();
        $("passcode").select();
      }
      return null;
    }
    if (!body || !Array.isArray(body.files)) {
      fail("The link service answered with something that is not a manifest.");
      return null;
    }
    var files = [];
    for (var i = 0; i < body.files.length; i++) {
      var entry = body.files[i] || {};
      if (typeof entry.embedded === "string") {
        files.push({ contentType: entry.contentType, jwe: entry.embedded });
      } else if (typeof entry.location === "string") {
        var file = await fetch(new URL(entry.location, payload.url.href).href, FETCH_OPTIONS);
        if (!file.ok) {
          fail(
            file.status === 404 || file.status === 410
              ? "A file's download time ran out. Open the record again."
              : "A file could not be downloaded (" + file.status + "). Open the record again."
          );
          return null;
        }
        files.push({ contentType: entry.contentType, jwe: await file.text() });
      }
    }
    return files;
  }

  function pause(seconds) {
    var button = $("open");
    button.disabled = true;
    button.dataset.paused = "1";
    window.setTimeout(function () {
      delete button.dataset.paused;
      button.disabled = false;
    }, seconds * 1000);
  }

  // ---------------------------------------------------------------- narrative allowlist

  var KEEP = {
    div: 1, p: 1, span: 1, br: 1, b: 1, strong: 1, i: 1, em: 1, u: 1, small: 1, sub: 1,
    sup: 1, ul: 1, ol: 1, li: 1, dl: 1, dt: 1, dd: 1, table: 1, thead: 1, tbody: 1, tfoot: 1,
    tr: 1, th: 1, td: 1, caption: 1, h3: 1, h4: 1, h5: 1, h6: 1, pre: 1, code: 1,
    blockquote: 1, hr: 1,
  };
  // Dropped with everything inside them; any other element is replaced by its text.
  var DROP = {
    script: 1, style: 1, iframe: 1, frame: 1, frameset: 1, object: 1, embed: 1, applet: 1,
    template: 1, noscript: 1, svg: 1, math: 1, link: 1, meta: 1, base: 1, form: 1, input: 1,
    button: 1, textarea: 1, select: 1, option: 1, img: 1, picture: 1, video: 1, audio: 1,
    source: 1, track: 1, canvas: 1, head: 1, title: 1,
  };
  var MAX_DEPTH = 40;

  // A copy of a narrative's XHTML made only of allowed elements and text: no attribute
  // survives but a table cell's span, so no handler, style, link or URL can.
  function sanitize(xhtml) {
    // DOMParser documents are inert: their scripts never run and their images never load.
    var parsed = new DOMParser().parseFromString(String(xhtml), "text/html");
    var out = document.createDocumentFragment();
    copyChildren(parsed.body, out, 0);
    return out;
  }

  function copyChildren(from, to, depth) {
    if (depth > MAX_DEPTH) {
      return;
    }
    for (var node = from.firstChild; node; node = node.nextSibling) {
      if (node.nodeType === Node.TEXT_NODE) {
        to.appendChild(document.createTextNode(node.data));
      } else if (node.nodeType === Node.ELEMENT_NODE) {
        var name = node.localName.toLowerCase();
        if (DROP[name]) {
          continue;
        }
        if (!KEEP[name]) {
          copyChildren(node, to, depth + 1);
          continue;
        }
        var copy = document.createElement(name);
        if (name === "td" || name === "th") {
          ["colspan", "rowspan"].forEach(function (attr) {
            var value = node.getAttribute(attr);
            if (value && /^[1-9][0-9]?$/.test(value)) {
              copy.setAttribute(attr, value);
            }
          });
        }
        copyChildren(node, copy, depth + 1);
        to.appendChild(copy);
      }
    }
  }

  // ---------------------------------------------------------------- FHIR display

  function concept(cc) {
    if (!cc || typeof cc !== "object") {
      return "";
    }
    if (cc.text) {
      return String(cc.text);
    }
    var codings = Array.isArray(cc.coding) ? cc.coding : [];
    for (var i = 0; i < codings.length; i++) {
      if (codings[i] && (codings[i].display || codings[i].code)) {
        return String(codings[i].display || codings[i].code);
      }
    }
    return "";
  }

  function concepts(list) {
    return (Array.isArray(list) ? list : []).map(concept).filter(Boolean).join(", ");
  }

  function humanName(names) {
    var name = Array.isArray(names) ? names[0] : null;
    if (!name) {
      return "";
    }
    if (name.text) {
      return String(name.text);
    }
    var given = Array.isArray(name.given) ? name.given.join(" ") : "";
    return [given, name.family || ""].join(" ").trim();
  }

  function quantity(q) {
    if (!q || q.value === undefined) {
      return "";
    }
    return String(q.value) + (q.unit || q.code ? " " + (q.unit || q.code) : "");
  }

  function value(r) {
    if (r.valueQuantity) {
      return quantity(r.valueQuantity);
    }
    if (r.valueCodeableConcept) {
      return concept(r.valueCodeableConcept);
    }
    if (r.valueString !== undefined) {
      return String(r.valueString);
    }
    if (r.valueBoolean !== undefined) {
      return r.valueBoolean ? "yes" : "no";
    }
    if (r.valueInteger !== undefined) {
      return String(r.valueInteger);
    }
    if (r.valueDateTime) {
      return fhirDate(r.valueDateTime);
    }
    return "";
  }

  function firstDate(r) {
    var keys = [
      "effectiveDateTime", "performedDateTime", "onsetDateTime", "recordedDate", "authored",
      "dateTime", "issued", "date", "createdDateTime", "created", "occurrenceDateTime",
    ];
    for (var i = 0; i < keys.length; i++) {
      if (typeof r[keys[i]] === "string") {
        return fhirDate(r[keys[i]]);
      }
    }
    var periods = ["performedPeriod", "effectivePeriod", "period"];
    for (var j = 0; j < periods.length; j++) {
      if (r[periods[j]] && r[periods[j]].start) {
        return fhirDate(r[periods[j]].start);
      }
    }
    return "";
  }

  // One line for a resource: what it is, then its details (value, status, date).
  function describe(r) {
    var title = "";
    var details = [];
    switch (r.resourceType) {
      case "AllergyIntolerance":
        title = concept(r.code);
        details.push(
          (Array.isArray(r.reaction) ? r.reaction : [])
            .map(function (x) {
              return concepts(x && x.manifestation);
            })
            .filter(Boolean)
            .join("; ")
        );
        details.push(r.criticality ? "criticality " + r.criticality : "");
        details.push(concept(r.clinicalStatus));
        break;
      case "MedicationStatement":
      case "MedicationRequest":
        title =
          concept(r.medicationCodeableConcept) ||
          (r.medicationReference && r.medicationReference.display) ||
          "";
        details.push(
          (Array.isArray(r.dosage) ? r.dosage : Array.isArray(r.dosageInstruction) ? r.dosageInstruction : [])
            .map(function (d) {
              return d && d.text;
            })
            .filter(Boolean)
            .join("; ")
        );
        details.push(r.status || "");
        break;
      case "Condition":
        title = concept(r.code);
        details.push(concept(r.clinicalStatus));
        break;
      case "Procedure":
        title = concept(r.code);
        details.push(concepts(r.bodySite));
        details.push(r.status || "");
        break;
      case "Observation":
        title = concept(r.code);
        details.push(value(r));
        break;
      case "Consent":
        title = concepts(r.category) || concept(r.scope) || "Consent";
        details.push(r.status || "");
        break;
      case "QuestionnaireResponse":
        title = "Questionnaire answers";
        details.push(r.status || "");
        break;
      case "Media":
        title = (r.content && r.content.title) || concept(r.bodySite) || "Photo";
        break;
      case "Patient":
        title = humanName(r.name);
        details.push(r.birthDate ? "born " + r.birthDate : "");
        break;
      default:
        title = concept(r.code) || concept(r.type) || r.title || r.name || "";
        details.push(r.status || "");
    }
    details.push(firstDate(r));
    return {
      title: title || r.resourceType || "Resource",
      details: details.filter(Boolean).join(" · "),
    };
  }

  function entryItem(resource) {
    var item = el("li", "entry");
    var line = describe(resource);
    item.appendChild(el("span", "entry-title", line.title));
    if (line.details) {
      item.appendChild(el("span", "entry-details", line.details));
    }
    if (resource.resourceType === "QuestionnaireResponse") {
      var answers = answerList(resource.item, 0);
      if (answers) {
        item.appendChild(answers);
      }
    }
    return item;
  }

  function answerList(items, depth) {
    if (!Array.isArray(items) || !items.length || depth > 6) {
      return null;
    }
    var list = el("dl", "answers");
    items.forEach(function (it) {
      if (!it || typeof it !== "object") {
        return;
      }
      var answers = (Array.isArray(it.answer) ? it.answer : [])
        .map(function (a) {
          if (!a) {
            return "";
          }
          if (a.valueCoding) {
            return a.valueCoding.display || a.valueCoding.code || "";
          }
          return value(a) || (a.valueDate ? String(a.valueDate) : "");
        })
        .filter(Boolean);
      list.appendChild(el("dt", null, it.text || it.linkId || ""));
      list.appendChild(el("dd", null, answers.join(", ") || "—"));
      var nested = answerList(it.item, depth + 1);
      if (nested) {
        var dd = el("dd");
        dd.appendChild(nested);
        list.appendChild(dd);
      }
    });
    return list;
  }

  // ---------------------------------------------------------------- the summary document

  function indexOf(bundle) {
    var index = {};
    (Array.isArray(bundle.entry) ? bundle.entry : []).forEach(function (entry) {
      var r = entry && entry.resource;
      if (!r || typeof r !== "object") {
        return;
      }
      if (entry.fullUrl) {
        index[entry.fullUrl] = r;
      }
      if (r.resourceType && r.id) {
        index[r.resourceType + "/" + r.id] = r;
      }
    });
    return index;
  }

  function resolve(index, reference) {
    if (!reference || typeof reference.reference !== "string") {
      return null;
    }
    var ref = reference.reference;
    if (index[ref]) {
      return index[ref];
    }
    // An absolute reference whose tail is Type/id.
    var tail = ref.split("/").slice(-2).join("/");
    return index[tail] || null;
  }

  function renderSummary(bundle, target) {
    var index = indexOf(bundle);
    var first = bundle.entry && bundle.entry[0] && bundle.entry[0].resource;
    if (!first || first.resourceType !== "Composition") {
      target.appendChild(el("p", "problem", "The summary has no Composition; it cannot be shown."));
      return;
    }
    var composition = first;
    target.appendChild(el("h1", "doc-title", composition.title || "Patient summary"));
    var patient = resolve(index, composition.subject);
    var facts = el("dl", "facts patient");
    var add = function (label, text) {
      if (text) {
        facts.appendChild(el("dt", null, label));
        facts.appendChild(el("dd", null, text));
      }
    };
    if (patient) {
      add("Patient", humanName(patient.name));
      add("Date of birth", patient.birthDate || "");
      add("Sex", patient.gender || "");
    }
    add("Document date", fhirDate(composition.date));
    add(
      "Author",
      (Array.isArray(composition.author) ? composition.author : [])
        .map(function (a) {
          var who = resolve(index, a);
          return (a && a.display) || (who && (humanName(who.name) || who.name)) || "";
        })
        .filter(Boolean)
        .join(", ")
    );
    add("Custodian", composition.custodian && composition.custodian.display);
    target.appendChild(facts);
    (Array.isArray(composition.section) ? composition.section : []).forEach(function (section) {
      target.appendChild(renderSection(section, index, 2));
    });
  }

  function renderSection(section, index, level) {
    var box = el("section", "doc-section");
    box.appendChild(el(level === 2 ? "h2" : "h3", null, section.title || concept(section.code) || "Section"));
    var div = section.text && section.text.div;
    var entries = (Array.isArray(section.entry) ? section.entry : [])
      .map(function (ref) {
        return resolve(index, ref);
      })
      .filter(Boolean);
    if (div) {
      // The narrative is what the document's author attested: shown as written, but only
      // through the allowlist.
      var narrative = el("div", "narrative");
      narrative.appendChild(sanitize(div));
      box.appendChild(narrative);
    } else if (entries.length) {
      var list = el("ul", "entries");
      entries.forEach(function (r) {
        list.appendChild(entryItem(r));
      });
      box.appendChild(list);
    } else if (section.emptyReason) {
      box.appendChild(el("p", "empty", concept(section.emptyReason) || "No information"));
    } else {
      box.appendChild(el("p", "empty", "No information"));
    }
    (Array.isArray(section.section) ? section.section : []).forEach(function (sub) {
      box.appendChild(renderSection(sub, index, level + 1));
    });
    return box;
  }

  // ---------------------------------------------------------------- records and photos

  var TYPE_NAMES = {
    AllergyIntolerance: "Allergies and intolerances",
    MedicationStatement: "Medications",
    Condition: "Problems and conditions",
    Procedure: "Procedures and treatments",
    Observation: "Observations",
    QuestionnaireResponse: "Intake and history forms",
    Consent: "Consents",
    Patient: "Patient",
  };

  function renderRecords(resources, target) {
    var byType = {};
    resources.forEach(function (r) {
      if (r && typeof r === "object" && typeof r.resourceType === "string") {
        (byType[r.resourceType] = byType[r.resourceType] || []).push(r);
      }
    });
    Object.keys(byType)
      .sort()
      .forEach(function (type) {
        var box = el("section", "record-type");
        box.dataset.type = type;
        box.appendChild(el("h3", null, (TYPE_NAMES[type] || type) + " (" + byType[type].length + ")"));
        var list = el("ul", "entries");
        byType[type].forEach(function (r) {
          list.appendChild(entryItem(r));
        });
        box.appendChild(list);
        target.appendChild(box);
      });
  }

  // The image's first bytes must match its declared type: a data: URL of anything else is
  // not shown.
  function looksLike(type, data) {
    var head;
    try {
      head = atob(data.slice(0, 16));
    } catch (e) {
      return false;
    }
    if (type === "image/jpeg") {
      return head.charCodeAt(0) === 0xff && head.charCodeAt(1) === 0xd8 && head.charCodeAt(2) === 0xff;
    }
    if (type === "image/png") {
      return head.slice(0, 8) === "\x89PNG\r\n\x1a\n";
    }
    return head.slice(0, 4) === "RIFF" && head.slice(8, 12) === "WEBP";
  }

  function renderPhoto(media, target) {
    var content = media.content || {};
    var type = String(content.contentType || "").toLowerCase();
    var data = typeof content.data === "string" ? content.data.replace(/\s+/g, "") : "";
    var figure = el("figure", "photo");
    var caption = [concept(media.bodySite), content.title || "", firstDate(media)]
      .filter(Boolean)
      .join(" · ");
    if (!PHOTO_TYPES[type] || !/^[A-Za-z0-9+/]+={0,2}$/.test(data) || !looksLike(type, data)) {
      figure.appendChild(el("p", "empty", "A photo in a format this viewer does not show."));
    } else {
      var img = el("img");
      img.alt = "Clinical photo" + (caption ? ": " + caption : "");
      img.src = "data:" + type + ";base64," + data;
      figure.appendChild(img);
    }
    figure.appendChild(el("figcaption", null, caption || "Clinical photo"));
    target.appendChild(figure);
  }

  // ---------------------------------------------------------------- the flow

  function resetRecord() {
    ["summary", "records-body", "photos-body"].forEach(function (id) {
      $(id).replaceChildren();
    });
    show("records", false);
    show("photos", false);
    show("record", false);
  }

  async function open(event) {
    event.preventDefault();
    var payload = state.payload;
    fail("");
    if (expired(payload)) {
      showExpired(payload);
      return;
    }
    var recipient = $("recipient").value.trim();
    var passcode = $("passcode").value;
    if (!recipient) {
      fail("Enter your name: it is recorded with this access.");
      $("recipient").focus();
      return;
    }
    if (payload.flag.indexOf("P") >= 0 && !passcode) {
      fail("Enter the passcode.");
      $("passcode").focus();
      return;
    }
    var button = $("open");
    button.disabled = true;
    say("Opening the record…");
    var files;
    try {
      files = await fetchFiles(payload, recipient, passcode);
    } catch (e) {
      fail("The link service could not be reached. Check the connection and try again.");
      files = null;
    } finally {
      if (!button.dataset.paused) {
        button.disabled = false;
      }
    }
    if (!files) {
      return;
    }
    say("Decrypting…");
    try {
      await showFiles(files);
    } catch (e) {
      resetRecord();
      fail("The record could not be opened: " + e.message + ".");
      return;
    }
    $("passcode").value = "";
    show("access", false);
    say("");
    show("record", true);
    $("summary").focus();
  }

  async function showFiles(files) {
    resetRecord();
    var key = state.key;
    var records = [];
    var photos = 0;
    var summaries = 0;
    var skipped = 0;
    for (var i = 0; i < files.length; i++) {
      var file = await decrypt(files[i].jwe, key);
      var type = (files[i].contentType || file.contentType || "").toLowerCase();
      if (type !== "application/fhir+json" && type !== "application/json") {
        skipped += 1;
        continue;
      }
      var resource;
      try {
        resource = JSON.parse(file.text);
      } catch (e) {
        throw new Error("a file is not valid JSON");
      }
      if (!resource || typeof resource !== "object") {
        throw new Error("a file is not a FHIR resource");
      }
      if (resource.resourceType === "Bundle" && resource.type === "document") {
        if (summaries) {
          $("summary").appendChild(el("hr"));
        }
        renderSummary(resource, $("summary"));
        summaries += 1;
      } else if (resource.resourceType === "Bundle") {
        (Array.isArray(resource.entry) ? resource.entry : []).forEach(function (entry) {
          if (entry && entry.resource) {
            records.push(entry.resource);
          }
        });
      } else if (resource.resourceType === "Media") {
        renderPhoto(resource, $("photos-body"));
        photos += 1;
      } else {
        records.push(resource);
      }
    }
    if (!summaries) {
      $("summary").appendChild(el("p", "empty", "No summary document was shared."));
    }
    if (records.length) {
      renderRecords(records, $("records-body"));
      show("records", true);
    }
    if (photos) {
      show("photos", true);
    }
    if (skipped) {
      $("summary").appendChild(
        el("p", "hint", skipped + (skipped === 1 ? " file" : " files") + " of another kind not shown.")
      );
    }
  }

  function showExpired(payload) {
    show("access", false);
    show("record", false);
    fail("This link expired on " + when(payload.exp) + ". Ask the client or the spa for a new one.");
  }

  async function start(text) {
    fail("");
    say("");
    resetRecord();
    var payload;
    try {
      payload = parseLink(text);
    } catch (e) {
      show("access", false);
      show("paste", true);
      fail(e.message);
      return;
    }
    if (payload.url.origin !== window.location.origin) {
      // The CSP lets this page fetch from its own service only.
      show("access", false);
      show("paste", true);
      fail("This link belongs to another service (" + payload.url.host + "): open it with that service's viewer.");
      return;
    }
    show("paste", false);
    if (expired(payload)) {
      showExpired(payload);
      return;
    }
    if (!window.crypto || !crypto.subtle || typeof DecompressionStream === "undefined") {
      fail("This browser cannot decrypt the record (Web Crypto is missing). Use a current browser over https.");
      return;
    }
    try {
      state.key = await crypto.subtle.importKey("raw", payload.keyBytes, { name: "AES-GCM" }, false, [
        "decrypt",
      ]);
    } catch (e) {
      fail("This browser cannot use the link's key (AES-GCM is missing). Use a current browser.");
      return;
    }
    state.payload = payload;
    payload.keyBytes = null; // kept only inside the non-extractable CryptoKey from here on
    $("link-label").textContent = payload.label || "—";
    $("link-expiry").textContent = payload.exp !== undefined ? when(payload.exp) : "no expiry date";
    show("passcode-field", payload.flag.indexOf("P") >= 0);
    $("passcode").required = payload.flag.indexOf("P") >= 0;
    show("access", true);
    $("recipient").focus();
  }

  function fromHash() {
    var hash = window.location.hash ? window.location.hash.slice(1) : "";
    if (hash.indexOf(PREFIX) >= 0) {
      var text = hash;
      try {
        text = decodeURIComponent(hash);
      } catch (e) {
        // Not percent-encoded after all: base64url needs no decoding.
      }
      start(text);
    } else {
      show("access", false);
      show("paste", true);
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    $("summary").tabIndex = -1;
    $("access-form").addEventListener("submit", open);
    $("paste-form").addEventListener("submit", function (event) {
      event.preventDefault();
      start($("paste-link").value);
    });
    $("print").addEventListener("click", function () {
      window.print();
    });
    window.addEventListener("hashchange", fromHash);
    fromHash();
  });
})();
