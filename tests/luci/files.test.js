'use strict';
/* The app's JSON files, its ACL against what the views call, its menu, and its .pot. */
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const h = require('./harness');

/* what bondingd's methods do: readers may call these, the rest change state (python/bonding/api.py) */
const READ_METHODS = [ 'path', 'status' ];
/* granted to every logged-in session by luci-base's own ACL, not ours */
const LUCI_BASE_GRANTS = [ 'session.access' ];

function walk(dir) {
	return fs.readdirSync(dir, { withFileTypes: true }).flatMap(e =>
		e.isDirectory() ? walk(path.join(dir, e.name)) : [ path.join(dir, e.name) ]);
}

const views = walk(h.HTDOCS).filter(f => f.endsWith('.js'));

/* every rpc.declare of every view, found by loading the views with a recording rpc stub */
function declarations() {
	const out = [];
	for (const file of views) {
		const rel = path.relative(h.HTDOCS, file);
		const rpc = h.makeRpc(() => ({}));
		const f = h.makeForm();
		h.loadView(rel, {
			L: h.makeL(true),
			modules: {
				view: h.viewModule, baseclass: h.baseclass, dom: h.dom, poll: h.makePoll(), rpc, ui: h.makeUi(),
				form: f.form, uci: h.makeUci(), 'tools.widgets': f.widgets
			}
		});
		for (const d of rpc.declared)
			out.push({ file: rel, object: d.object, method: d.method });
	}
	return out;
}

test('all JSON files parse', () => {
	const files = walk(h.APP).concat(walk(path.join(__dirname, 'fixtures'))).filter(f => f.endsWith('.json'));
	assert.ok(files.length >= 5);
	for (const f of files)
		assert.doesNotThrow(() => JSON.parse(fs.readFileSync(f, 'utf8')), f);
});

test('every view is valid JavaScript that LuCI can load', () => {
	assert.ok(views.length >= 3);
	for (const f of views) {
		const src = fs.readFileSync(f, 'utf8');
		assert.match(src, /^'use strict';\n/, `${f} starts with 'use strict'`);
		assert.doesNotThrow(() => new Function(src), f);
	}
});

test('every rpc.declare object/method is granted by the ACL', () => {
	const acl = h.readJSON('root/usr/share/rpcd/acl.d/luci-app-bonding.json')['luci-app-bonding'];
	const granted = new Set();
	for (const level of [ 'read', 'write' ])
		for (const [ object, methods ] of Object.entries(acl[level].ubus || {}))
			for (const m of methods)
				granted.add(`${object}.${m}`);

	const decls = declarations();
	assert.ok(decls.length >= 6);
	for (const d of decls) {
		const name = `${d.object}.${d.method}`;
		assert.ok(granted.has(name) || LUCI_BASE_GRANTS.includes(name), `${d.file}: ${name} is granted`);
	}

	/* and nothing is granted that no view uses */
	const used = new Set(decls.map(d => `${d.object}.${d.method}`));
	for (const g of granted)
		assert.ok(used.has(g), `${g} is granted but never called`);
});

test('read methods only in read; state-changing methods and secrets only in write', () => {
	const acl = h.readJSON('root/usr/share/rpcd/acl.d/luci-app-bonding.json')['luci-app-bonding'];
	assert.ok(acl.description);
	assert.deepEqual(Object.keys(acl).sort(), [ 'description', 'read', 'write' ]);
	assert.deepEqual(acl.read.ubus.bonding.slice().sort(), READ_METHODS);
	assert.deepEqual(Object.keys(acl.read.ubus), [ 'bonding' ]);
	assert.deepEqual(acl.read.uci, [ 'bonding' ]);
	for (const m of acl.write.ubus.bonding)
		assert.ok(!READ_METHODS.includes(m), `${m} in write is a state-changing method`);
	assert.deepEqual(acl.write.ubus.bonding.slice().sort(), [ 'probe', 'reload', 'set_key', 'set_path' ]);
	/* keys go through bondingd's set_key, never through uci: nothing of them is ever staged */
	assert.deepEqual(acl.write.uci, [ 'bonding' ]);
	assert.ok(!JSON.stringify(acl).includes('secret'), 'bonding_secrets in no uci or file grant');
	assert.equal(acl.read.file, undefined);
});

test('menu entries point to views that exist and depend on the ACL', () => {
	const menu = h.readJSON('root/usr/share/luci/menu.d/luci-app-bonding.json');
	const acl = h.readJSON('root/usr/share/rpcd/acl.d/luci-app-bonding.json');
	const top = menu['admin/services/bonding'];
	assert.ok(top, 'Services → Bonding');
	assert.deepEqual(top.depends.acl, [ 'luci-app-bonding' ]);
	for (const group of top.depends.acl)
		assert.ok(acl[group], `ACL group ${group} exists`);
	assert.ok(menu[top.action.path], 'the alias points to an entry');

	const viewsSeen = [];
	for (const [ key, entry ] of Object.entries(menu)) {
		assert.ok(key.startsWith('admin/services/bonding'), key);
		assert.ok(entry.title, `${key} has a title`);
		if (entry.action.type === 'view') {
			const file = path.join(h.HTDOCS, 'view', entry.action.path + '.js');
			assert.ok(fs.existsSync(file), `${key} → ${entry.action.path}.js exists`);
			viewsSeen.push(entry.action.path);
		}
	}
	assert.deepEqual(viewsSeen.sort(), [ 'bonding/config', 'bonding/rules', 'bonding/status' ]);
});

test('the .pot is current (regenerating it changes nothing)', t => {
	const py = spawnSync('python3', [ '--version' ]);
	if (py.error) {
		t.skip('python3 not found: cannot run tools/luci-pot.py');
		return;
	}
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bonding-pot-'));
	try {
		const out = path.join(dir, 'bonding.pot');
		const r = spawnSync('python3', [ path.join(h.REPO, 'tools', 'luci-pot.py'), '-o', out ], { encoding: 'utf8' });
		assert.equal(r.status, 0, r.stderr);
		const fresh = fs.readFileSync(out, 'utf8');
		const committed = fs.readFileSync(path.join(h.APP, 'po', 'templates', 'bonding.pot'), 'utf8');
		assert.ok(fresh === committed, 'po/templates/bonding.pot is stale: run tools/luci-pot.py');
	} finally {
		fs.rmSync(dir, { recursive: true, force: true });	/* also when it failed */
	}
});

test('every _() string of the views is in the .pot', () => {
	const pot = fs.readFileSync(path.join(h.APP, 'po', 'templates', 'bonding.pot'), 'utf8');
	const ids = new Set();
	for (const m of pot.matchAll(/^msgid ((?:".*"\n)+)/gm))
		ids.add(m[1].trim().split('\n').map(l => JSON.parse(l)).join(''));
	/* what _() returns while the views render: record it through a _ that remembers */
	const seen = new Set();
	for (const file of views) {
		const src = fs.readFileSync(file, 'utf8');
		for (const m of src.matchAll(/(?<![\w.])_\(\s*'((?:[^'\\]|\\.)*)'/g))
			seen.add(m[1].replace(/\\'/g, '\''));
	}
	assert.ok(seen.size > 100);
	for (const s of seen)
		assert.ok(ids.has(s), `"${s}" is in bonding.pot`);
	assert.ok(ids.has('Bonding') && ids.has('Status') && ids.has('Configuration') && ids.has('Rules'), 'menu titles');
	assert.ok(ids.has('Grant access to the bonding status and configuration'), 'ACL description');
});
