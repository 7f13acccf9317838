// Helpers shared by the interop scripts: a minimal cookie-keeping browser
// over fetch and a tiny HTML form parser, enough for the server's pages.

// ---------------------------------------------------------------------------
// A minimal browser: cookie jar by hand, no automatic redirects.

export class Browser {
  constructor() {
    /** @type {Map<string, {name: string, value: string, path: string}>} */
    this.cookies = new Map()
  }

  cookieHeader(url) {
    const pairs = []
    for (const c of this.cookies.values()) {
      if (url.pathname === c.path || url.pathname.startsWith(c.path.endsWith('/') ? c.path : c.path + '/') || c.path === '/') {
        pairs.push(`${c.name}=${c.value}`)
      }
    }
    return pairs.join('; ')
  }

  store(url, setCookie) {
    const [pair, ...attrs] = setCookie.split(';')
    const eq = pair.indexOf('=')
    if (eq < 1) return
    const name = pair.slice(0, eq).trim()
    const value = pair.slice(eq + 1).trim()
    let path = url.pathname.replace(/\/[^/]*$/, '') || '/'
    let expired = false
    for (const a of attrs) {
      const [k, ...rest] = a.split('=')
      const key = k.trim().toLowerCase()
      const val = rest.join('=').trim()
      if (key === 'path' && val.startsWith('/')) path = val
      if (key === 'max-age' && Number(val) <= 0) expired = true
      if (key === 'expires' && Date.parse(val) < Date.now()) expired = true
    }
    const key = `${name};${path}`
    if (expired) this.cookies.delete(key)
    else this.cookies.set(key, { name, value, path })
  }

  async fetch(url, init = {}) {
    url = new URL(url)
    const headers = new Headers(init.headers)
    const cookie = this.cookieHeader(url)
    if (cookie) headers.set('cookie', cookie)
    const res = await fetch(url, { ...init, headers, redirect: 'manual' })
    for (const sc of res.headers.getSetCookie()) this.store(url, sc)
    return res
  }
}

// ---------------------------------------------------------------------------
// A tiny HTML form parser: enough for the server's login and consent pages.

export function decodeEntities(s) {
  const named = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' }
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (m, e) => {
    if (e[0] === '#') {
      const code = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10)
      return String.fromCodePoint(code)
    }
    return named[e.toLowerCase()] ?? m
  })
}

export function parseAttrs(tag) {
  const attrs = {}
  const re = /([^\s"'<>\/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g
  const body = tag.replace(/^<\s*[a-z]+/i, '').replace(/\/?>$/, '')
  for (const m of body.matchAll(re)) {
    attrs[m[1].toLowerCase()] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? '')
  }
  return attrs
}

export function parseForms(html, pageUrl) {
  const forms = []
  for (const m of html.matchAll(/<form\b[^>]*>([\s\S]*?)<\/form>/gi)) {
    const attrs = parseAttrs(m[0].slice(0, m[0].indexOf('>') + 1))
    const form = {
      action: new URL(attrs.action ?? '', pageUrl),
      method: (attrs.method || 'GET').toUpperCase(),
      fields: new URLSearchParams(),
      buttons: [],
    }
    for (const t of m[1].matchAll(/<(input|button)\b[^>]*>/gi)) {
      const a = parseAttrs(t[0])
      if (!a.name) continue
      const type = (a.type || (t[1].toLowerCase() === 'button' ? 'submit' : 'text')).toLowerCase()
      if (type === 'submit' || type === 'image') form.buttons.push({ name: a.name, value: a.value ?? '' })
      else if (type === 'checkbox' || type === 'radio') {
        if ('checked' in a) form.fields.append(a.name, a.value || 'on')
      } else if (!['button', 'reset', 'file'].includes(type)) form.fields.append(a.name, a.value ?? '')
    }
    forms.push(form)
  }
  return forms
}

export function pageText(html) {
  return html
    .replace(/<(script|style|head)\b[\s\S]*?<\/\1>/gi, ' ')
    .replace(/<[^>]+>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim()
}
