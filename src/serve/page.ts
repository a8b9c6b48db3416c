/**
 * The web page of `xfer serve`: one self-contained HTML document (no external scripts, styles,
 * fonts or CDNs) where a person drops or picks an image and sees it with its predicted classes as
 * bars. Every text that comes from outside (class names, file names, error messages) is set with
 * `textContent`, never parsed as HTML; the server's Content-Security-Policy allows only the
 * scripts and styles carrying this response's nonce, a second line of defence.
 */

const STYLE = `
:root { color-scheme: light dark; --accent: #2f6fdf; --muted: #8a8f98; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; padding: 24px; max-width: 760px; margin-inline: auto; }
h1 { font-size: 20px; margin: 0 0 16px; }
#drop { border: 2px dashed var(--muted); border-radius: 10px; padding: 28px; text-align: center; cursor: pointer; }
#drop.over { border-color: var(--accent); background: color-mix(in srgb, var(--accent) 10%, transparent); }
#drop input { display: none; }
#result { display: none; gap: 20px; margin-top: 20px; align-items: flex-start; }
#result.shown { display: flex; }
#preview { max-width: 240px; max-height: 240px; border-radius: 6px; image-rendering: auto; }
#side { flex: 1; min-width: 0; }
#file { color: var(--muted); overflow-wrap: anywhere; margin-bottom: 8px; }
.row { margin: 6px 0; }
.label { display: flex; justify-content: space-between; gap: 8px; }
.name { overflow-wrap: anywhere; }
.bar { height: 10px; border-radius: 5px; background: color-mix(in srgb, var(--muted) 30%, transparent); overflow: hidden; }
.fill { height: 100%; background: var(--accent); }
#error { color: #d33; margin-top: 12px; white-space: pre-wrap; }
#auth { display: none; margin-top: 12px; }
#auth.shown { display: block; }
`;

// Plain browser JavaScript (no build step); the server sends it inline with a nonce.
const SCRIPT = `
const $ = (id) => document.getElementById(id);
const drop = $('drop'), input = $('picker'), errorBox = $('error');
let token = sessionStorage.getItem('xfer-token') || '';
let lastFile = null;

function showError(text) { errorBox.textContent = text; }

function showClasses(classes) {
  const list = $('classes');
  list.replaceChildren();
  for (const c of classes) {
    const row = document.createElement('div'); row.className = 'row';
    const label = document.createElement('div'); label.className = 'label';
    const name = document.createElement('span'); name.className = 'name'; name.textContent = c.className;
    const pct = document.createElement('span'); pct.textContent = (100 * c.probability).toFixed(1) + '%';
    label.append(name, pct);
    const bar = document.createElement('div'); bar.className = 'bar';
    const fill = document.createElement('div'); fill.className = 'fill';
    fill.style.width = Math.max(0, Math.min(100, 100 * c.probability)).toFixed(1) + '%';
    bar.append(fill);
    row.append(label, bar);
    list.append(row);
  }
}

async function classify(file) {
  lastFile = file;
  showError('');
  $('preview').src = URL.createObjectURL(file);
  $('file').textContent = file.name;
  $('classes').replaceChildren();
  $('status').textContent = 'Classifying…';
  $('result').classList.add('shown');
  const form = new FormData();
  form.append('image', file, file.name);
  const headers = token ? { authorization: 'Bearer ' + token } : {};
  let response;
  try {
    response = await fetch('predict', { method: 'POST', body: form, headers });
  } catch (e) {
    $('status').textContent = '';
    return showError('The server could not be reached: ' + e.message);
  }
  $('status').textContent = '';
  const body = await response.json().catch(() => null);
  if (response.status === 401) {
    $('auth').classList.add('shown');
    return showError('This server needs a token. Enter it above and drop the image again.');
  }
  if (!response.ok) return showError((body && body.error && body.error.message) || ('HTTP ' + response.status));
  showClasses(body.classes);
  document.body.dataset.state = 'done';
}

drop.addEventListener('click', () => input.click());
drop.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') input.click(); });
input.addEventListener('change', () => { if (input.files[0]) classify(input.files[0]); input.value = ''; });
drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault(); drop.classList.remove('over');
  const file = e.dataTransfer.files[0];
  if (file) classify(file);
});
$('token').addEventListener('change', (e) => {
  token = e.target.value.trim();
  sessionStorage.setItem('xfer-token', token);
  if (lastFile) classify(lastFile);
});
`;

/** The page, with `nonce` on its one script and one style element. */
export function renderPage(nonce: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>xfer — classify an image</title>
<style nonce="${nonce}">${STYLE}</style>
</head>
<body>
<h1>Classify an image</h1>
<div id="drop" role="button" tabindex="0" aria-label="Drop an image here or choose one">
  <strong>Drop an image here</strong> or click to choose one
  <input id="picker" type="file" accept="image/*">
</div>
<div id="auth"><label>Token <input id="token" type="password" autocomplete="off"></label></div>
<div id="error" role="alert"></div>
<div id="result">
  <img id="preview" alt="the uploaded image">
  <div id="side">
    <div id="file"></div>
    <div id="status"></div>
    <div id="classes"></div>
  </div>
</div>
<script nonce="${nonce}">${SCRIPT}</script>
</body>
</html>
`;
}
