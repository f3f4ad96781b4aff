// The documents the page writes and reads: presence (PIDF, RFC 3863, with the RPID
// activities of RFC 4480 and the data model's person note, RFC 4479) and is-composing
// indications (RFC 3994). No SIP here.

export const PIDF_TYPE = "application/pidf+xml";
export const ISCOMPOSING_TYPE = "application/im-iscomposing+xml";

const PIDF = "urn:ietf:params:xml:ns:pidf";
const DM = "urn:ietf:params:xml:ns:pidf:data-model";
const RPID = "urn:ietf:params:xml:ns:pidf:rpid";
const ISCOMPOSING = "urn:ietf:params:xml:ns:im-iscomposing";

/** Escapes text for an XML element or attribute. */
function esc(text) {
  return String(text).replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * A PIDF document for `entity`: one tuple with the basic status `basic` ("open" or
 * "closed"), and a person with the RPID `activity` (a name such as "away", or "") and
 * `note` (or "").
 */
export function pidf(entity, basic, activity, note) {
  const activities = activity ? `<rpid:activities><rpid:${activity}/></rpid:activities>` : "";
  const personNote = note ? `<dm:note>${esc(note)}</dm:note>` : "";
  return `<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="${PIDF}" xmlns:dm="${DM}" xmlns:rpid="${RPID}" entity="${esc(entity)}">
<tuple id="web"><status><basic>${basic === "open" ? "open" : "closed"}</basic></status><contact>${esc(entity)}</contact></tuple>
<dm:person id="p-web">${activities}${personNote}</dm:person>
</presence>`;
}

function parse(xml) {
  const doc = new DOMParser().parseFromString(xml || "", "application/xml");
  return doc.getElementsByTagName("parsererror").length ? null : doc;
}

/**
 * What a PIDF document says: `{ status: "open"|"closed", activity, note }` (activity and
 * note "" when absent); `null` when it is not XML. Open when any tuple is open; the first
 * activity and the first note (person, tuple or presence level) are shown.
 */
export function readPidf(xml) {
  const doc = parse(xml);
  if (!doc) return null;
  const basics = [...doc.getElementsByTagNameNS(PIDF, "basic")].map((e) => e.textContent.trim());
  const activities = doc.getElementsByTagNameNS(RPID, "activities")[0];
  let activity = "";
  if (activities) {
    const first = [...activities.children].find((e) => e.localName !== "note");
    if (first) activity = first.localName === "other" ? first.textContent.trim() : first.localName;
  }
  const notes = [
    ...doc.getElementsByTagNameNS(DM, "note"),
    ...doc.getElementsByTagNameNS(PIDF, "note"),
  ];
  return {
    status: basics.includes("open") ? "open" : "closed",
    activity,
    note: notes.length ? notes[0].textContent.trim() : "",
  };
}

/** An is-composing indication: `state` "active" (with `refresh` seconds) or "idle". */
export function isComposing(state, refresh) {
  const refreshElement = state === "active" ? `<refresh>${refresh}</refresh>` : "";
  return `<?xml version="1.0" encoding="UTF-8"?>
<isComposing xmlns="${ISCOMPOSING}"><state>${state}</state><contenttype>text/plain</contenttype>${refreshElement}</isComposing>`;
}

/** Reads an is-composing indication: `{ active, refresh }` (refresh in seconds, or null). */
export function readIsComposing(xml) {
  const doc = parse(xml);
  if (!doc) return null;
  const text = (name) => doc.getElementsByTagNameNS(ISCOMPOSING, name)[0]?.textContent.trim();
  const refresh = Number.parseInt(text("refresh") ?? "", 10);
  return { active: text("state") === "active", refresh: Number.isFinite(refresh) ? refresh : null };
}
