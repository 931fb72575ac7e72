// The page's only way to the data: POST /api/v2/query (and a few GETs) on this listener.
// Same origin, so the login cookie rides along; a 401 sends the browser to the login page.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function request(path, init) {
  const response = await fetch(path, { credentials: "same-origin", ...init });
  if (response.status === 401) {
    const next = location.pathname + location.search;
    location.assign(`/login?next=${encodeURIComponent(next)}`);
    throw new ApiError(401, "sign in required");
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) throw new ApiError(response.status, (body && body.error) || response.statusText);
  return body;
}

export function getJSON(path) {
  return request(path, { headers: { Accept: "application/json" } });
}

export function postJSON(path, body) {
  return request(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body),
  });
}

/** One Stats API v2 query; resolves to the response ({results, meta, query}). */
export function query(body) {
  return postJSON("/api/v2/query", body);
}

/** The common part of every panel's query: site, period and the filter chips (ANDed). */
export function base(state) {
  const out = { site_id: state.site, date_range: state.range.date_range };
  if (state.filters.length) out.filters = state.filters.map(([op, dim, values]) => [op, dim, values]);
  return out;
}

/** A filter list without the filters on ``dimension`` (a panel may not want to filter itself away). */
export function without(filters, dimension) {
  return filters.filter((f) => f[1] !== dimension);
}
