// Calls to the portal's API from its pages: session cookie + CSRF header, JSON errors.
//
// Every failure becomes an ApiError with the API's stable `code`, its `detail` and the
// HTTP status, so pages show the portal's own explanation instead of "HTTP 409".

export class ApiError extends Error {
  constructor(status, body) {
    super(ApiError.explain(body) || `The portal answered ${status}.`);
    this.status = status;
    this.code = (body && body.code) || `http_${status}`;
    this.body = body || {};
  }

  static explain(body) {
    if (!body) return "";
    const errors = body.errors || (body.extra && body.extra.errors);
    if (errors && typeof errors === "object") {
      const messages = Object.values(errors).flat().filter(Boolean);
      if (messages.length) return messages.join(" ");
    }
    return body.detail || "";
  }
}

// The page's CSRF token (its <meta>, or a form's field): the cookie's name depends on the
// deployment (`__Host-` on HTTPS and loopback).
export function csrfToken() {
  const meta = document.querySelector("meta[name=csrf-token]");
  const field = document.querySelector("input[name=csrfmiddlewaretoken]");
  return (meta && meta.content) || (field ? field.value : "");
}

export async function api(method, url, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, { code: "network_error", detail: "The portal cannot be reached." });
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}
