// @ts-check
// The viewer's JSON requests: an error reply ({ code, message }) becomes a thrown Error.

/** @param {string} url */
export async function getJson(url) {
  const r = await fetch(url);
  const body = await r.json();
  if (!r.ok) throw new Error(`${body.code}: ${body.message}`);
  return body;
}
