'use strict';
/*
 * Loads a LuCI view in node:vm with LuCI's globals stubbed, as openwrt/luci's
 * luci-app-package-manager tests do: no browser, no LuCI checkout.
 *
 * LuCI compiles a view as the body of a function whose parameters are the modules named by its
 * 'require X' / 'require X as Y' lines; we do the same, so a view that uses a module it did not
 * require fails here as it fails in the browser.
 */
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');

const REPO = path.resolve(__dirname, '..', '..');
const APP = path.join(REPO, 'luci-app-bonding');
const HTDOCS = path.join(APP, 'htdocs', 'luci-static', 'resources');

/* --- a small DOM: enough for E(), dom.content() and SVG ---------------------------------- */

class Node {
	constructor(tag, ns) {
		this.tag = tag;
		this.ns = ns || null;
		this.attrs = {};
		this.listeners = {};
		this.children = [];
		this.parentNode = null;
	}

	setAttribute(k, v) { this.attrs[k] = String(v); }
	getAttribute(k) { return Object.prototype.hasOwnProperty.call(this.attrs, k) ? this.attrs[k] : null; }
	removeAttribute(k) { delete this.attrs[k]; }

	appendChild(child) {
		if (child instanceof Node && child.tag === '#fragment') {
			for (const c of child.children.slice())
				this.appendChild(c);
			return child;
		}
		if (child.parentNode)
			child.parentNode.children = child.parentNode.children.filter(c => c !== child);
		child.parentNode = this;
		this.children.push(child);
		return child;
	}

	get textContent() {
		return this.children.map(c => c.textContent).join('');
	}

	get firstChild() { return this.children[0] || null; }

	get classList() {
		const node = this;
		const list = () => (node.attrs['class'] || '').split(/\s+/).filter(Boolean);
		return {
			contains: c => list().includes(c),
			add: c => { if (!list().includes(c)) node.attrs['class'] = list().concat([ c ]).join(' '); },
			remove: c => { node.attrs['class'] = list().filter(x => x !== c).join(' '); }
		};
	}

	/* all descendants (not this node) matching pred, document order */
	findAll(pred) {
		const out = [];
		const walk = n => {
			for (const c of n.children) {
				if (c instanceof Node) {
					if (pred(c))
						out.push(c);
					walk(c);
				}
			}
		};
		walk(this);
		return out;
	}

	find(pred) { return this.findAll(pred)[0] || null; }
	byId(id) { return this.find(n => n.attrs.id === id); }
	byClass(cls) { return this.findAll(n => n.classList.contains(cls)); }
	byTag(tag) { return this.findAll(n => n.tag === tag); }
	querySelector() { return null; }
	querySelectorAll() { return []; }
}

class Text {
	constructor(s) { this.data = String(s); this.parentNode = null; }
	get textContent() { return this.data; }
}

function toNodes(children) {
	const out = [];
	const add = c => {
		if (c == null || c === false)
			return;
		if (Array.isArray(c))
			return c.forEach(add);
		if (c instanceof Node && c.tag === '#fragment')
			return c.children.forEach(add);
		out.push((c instanceof Node || c instanceof Text) ? c : new Text(c));
	};
	add(children);
	return out;
}

/* LuCI's E(): E(tag), E(tag, children), E(tag, attrs, children), E([children]) */
function E(tag, attrs, children) {
	const node = new Node(Array.isArray(tag) ? '#fragment' : tag);

	if (Array.isArray(tag)) {
		children = tag;
		attrs = null;
	}
	else if (attrs != null && (Array.isArray(attrs) || typeof attrs !== 'object' || attrs instanceof Node || attrs instanceof Text)) {
		children = attrs;
		attrs = null;
	}

	for (const k in (attrs || {})) {
		const v = attrs[k];
		if (v == null)
			continue;
		if (typeof v === 'function')
			node.listeners[k] = v;
		else if (typeof v === 'object')
			node.attrs[k] = JSON.stringify(v);
		else
			node.attrs[k] = String(v);
	}

	for (const c of toNodes(children)) {
		c.parentNode = node;
		node.children.push(c);
	}

	return node;
}

const dom = {
	content(node, children) {
		node.children = [];
		for (const c of toNodes(children)) {
			c.parentNode = node;
			node.children.push(c);
		}
		return node;
	},
	append(node, children) {
		for (const c of toNodes(children))
			node.appendChild(c);
		return node;
	},
	create: E
};

/* LuCI's String.prototype.format, the conversions the views use: %s %d %f %.Nf %h %% */
const FORMAT = `
	Object.defineProperty(String.prototype, 'format', {
		configurable: true,
		value: function() {
			const args = arguments;
			let i = 0;
			return String(this).replace(/%(?:\\.(\\d+))?([sdfh%])/g, function(m, prec, conv) {
				if (conv === '%')
					return '%';
				const v = args[i++];
				switch (conv) {
				case 'd': return Math.floor(+v || 0).toFixed(0);
				case 'f': return (prec != null) ? (+v || 0).toFixed(+prec) : String(+v || 0);
				case 'h': return String(v).replace(/[<>&"']/g, c => '&#' + c.charCodeAt(0) + ';');
				default:  return String(v);
				}
			});
		}
	});
`;

/*
 * Build a vm context with LuCI's browser globals, and load a view file from htdocs.
 * `modules` maps the names a view requires ('view', 'rpc', 'tools.widgets', ...) to stubs.
 * A required name without a stub whose file is in htdocs ('bonding.rpc' is bonding/rpc.js) is
 * loaded from there into the same context, with the same stubs, once per view, and instantiated
 * as LuCI's L.require does: the view gets an instance of the class the module returns.
 */
function loadView(relPath, opts) {
	opts = opts || {};
	const state = { now: opts.now != null ? opts.now : 1763800000000 };

	const document = {
		createElementNS: (ns, tag) => new Node(tag, ns),
		createElement: tag => new Node(tag),
		createTextNode: s => new Text(s),
		querySelector: () => null
	};

	const sandbox = {
		console,
		E,
		_: (s, ctx) => s,
		N_: (n, s, p) => (n == 1 ? s : p),
		L: opts.L,
		document,
		window: {}
	};

	const ctx = vm.createContext(sandbox);
	vm.runInContext(FORMAT, ctx);
	vm.runInContext('Date.now = function() { return __state.now; };', Object.assign(ctx, { __state: state }));

	const loaded = {};
	const out = loadInto(ctx, relPath, opts.modules || {}, loaded, []);
	return Object.assign(out, { ctx, state, loaded });
}

/* A resource module ('bonding.format') as a view gets it: loaded, its class instantiated. */
function loadModule(name, opts) {
	opts = Object.assign({}, opts);
	opts.modules = Object.assign({ baseclass }, opts.modules);
	return instantiate(loadView(moduleFile(name), opts).result);
}

function moduleFile(name) {
	return name.split('.').join(path.sep) + '.js';
}

function loadInto(ctx, relPath, modules, loaded, stack) {
	const file = path.join(HTDOCS, relPath);
	const source = fs.readFileSync(file, 'utf8');

	const requires = [];
	const re = /^\s*'require ([\w.]+)(?: as (\w+))?';/gm;
	let m;
	while ((m = re.exec(source)) !== null)
		requires.push({ module: m[1], name: m[2] || m[1].split('.').pop() });

	const resolve = r => {
		if (r.module in modules)
			return modules[r.module];
		if (r.module in loaded)
			return loaded[r.module];
		if (stack.includes(r.module))
			throw new Error(`${relPath}: circular 'require ${r.module}'`);
		const rel = moduleFile(r.module);
		if (!fs.existsSync(path.join(HTDOCS, rel)))
			return undefined;
		const sub = loadInto(ctx, rel, Object.assign({ baseclass }, modules), loaded, stack.concat([ r.module ]));
		return (loaded[r.module] = instantiate(sub.result));
	};

	const missing = requires.filter(r => !(r.module in modules) && !fs.existsSync(path.join(HTDOCS, moduleFile(r.module))))
		.map(r => r.module);
	if (missing.length)
		throw new Error(`${relPath}: no stub for required module(s): ${missing.join(', ')}`);

	const wrapper = `(function(${requires.map(r => r.name).join(', ')}) {\n${source}\n})`;
	const factory = vm.runInContext(wrapper, ctx, { filename: file, lineOffset: -1 });
	const result = factory.apply(null, requires.map(resolve));

	return { result, requires, source };
}

/* --- stubs of LuCI modules ------------------------------------------------------------------ */

/*
 * rpc.declare records every declaration; a call goes to handler(decl, args), whose result is
 * treated as rpcd's reply is by LuCI's rpc.js: a thrown error rejects the call (a JSON-RPC error:
 * object not found, access denied), ubusStatus(n) is a ubus status code (rejected with
 * `reject: true`, else returned as the number), and `expect` replaces a reply of the wrong type.
 */
class UbusStatus {
	constructor(code) { this.code = code; }
}

function ubusStatus(code) {
	return new UbusStatus(code);
}

function applyExpect(expect, ret) {
	const type = Object.prototype.toString;
	for (const key in expect) {
		if (ret != null && key != '')
			ret = ret[key];
		if (ret == null || type.call(ret) != type.call(expect[key]))
			ret = expect[key];
		break;
	}
	return ret;
}

function makeRpc(handler) {
	const declared = [];
	const calls = [];
	return {
		declared,
		calls,
		declare(decl) {
			declared.push(decl);
			return function() {
				const args = Array.from(arguments);
				calls.push({ object: decl.object, method: decl.method, args });
				return Promise.resolve().then(() => handler(decl, args)).then(reply => {
					if (reply instanceof UbusStatus) {
						if (decl.reject)
							throw new Error(`RPC call to ${decl.object}/${decl.method} failed with ubus code ${reply.code}`);
						reply = reply.code;
					}
					if (decl.expect)
						reply = applyExpect(decl.expect, reply);
					return (reply && typeof reply === 'object') ? JSON.parse(JSON.stringify(reply)) : reply;
				});
			};
		}
	};
}

function makePoll() {
	const polls = [];
	return { polls, add(fn, interval) { polls.push({ fn, interval }); } };
}

function makeUi() {
	const ui = {
		notifications: [],
		modals: [],
		createHandlerFn(ctx, fn) {
			const args = Array.prototype.slice.call(arguments, 2);
			const f = (typeof fn === 'string') ? ctx[fn] : fn;
			return function(ev) { return f.apply(ctx, args.concat([ ev ])); };
		},
		addNotification(title, body, cls) { ui.notifications.push({ title, body, cls }); },
		showModal(title, body) { ui.modals.push({ title, body }); },
		hideModal() {}
	};
	return ui;
}

function makeL(writable) {
	return {
		bind: (fn, self) => fn.bind(self),
		isObject: v => v != null && typeof v === 'object' && !Array.isArray(v),
		resolveDefault: (p, d) => Promise.resolve(p).catch(() => d),
		hasViewPermission: () => writable,
		resource: p => '/luci-static/resources/' + p,
		env: {}
	};
}

/* view.extend: the class LuCI would instantiate; tests make one instance of it */
const viewModule = { extend: spec => spec };
const baseclass = { extend: spec => spec };

function instantiate(spec) {
	return Object.assign(Object.create(null), spec);
}

/*
 * form.*: records the form the view builds, options and their properties.  With `uci` (makeUci),
 * a Map also saves as LuCI's form.js does (parse: validate every option, then write or remove
 * it; the callback; uci.save(); load), options read and write through that uci.
 */
function makeForm(uci) {
	const maps = [];

	class AbstractValue {
		constructor(map, section, option, title, description) {
			Object.assign(this, { map, section, option, title, description, keylist: [], vallist: [], deps: [] });
			this.rmempty = true;
			this.optional = false;
		}
		/* LuCI's baseclass.extend: a subclass with these properties on its prototype */
		static extend(props) {
			const C = class extends this {};
			Object.defineProperty(C, 'name', { value: this.name });
			Object.assign(C.prototype, props);
			return C;
		}
		value(k, v) { this.keylist.push(String(k)); this.vallist.push(v != null ? v : k); }
		cfgvalue(section_id) { return this.load(section_id); }
		isActive(section_id) { return true; }
		/* LuCI's AbstractValue.textvalue: the value, else the default, else null ("none") */
		textvalue(section_id) {
			const v = this.cfgvalue(section_id);
			return (v != null) ? String(v) : (this.default != null ? String(this.default) : null);
		}
		depends(field, value) { this.deps.push(typeof field === 'string' ? { [field]: value } : field); }
		config() { return this.uciconfig || this.section.uciconfig || this.map.config; }
		load(section_id) { return this.map.data.get(this.config(), section_id, this.option); }
		formvalue(section_id) { return this.section.formvalue(section_id, this.option); }
		write(section_id, value) { return this.map.data.set(this.config(), section_id, this.option, value); }
		remove(section_id) { return this.map.data.unset(this.config(), section_id, this.option); }
		isValid(section_id) {
			const v = this.formvalue(section_id);
			if (v == null || v === '')
				return true;
			if (this.datatype && !require('./datatypes').validate(this.datatype, v))
				return false;
			return typeof this.validate !== 'function' || this.validate(section_id, v) === true;
		}
		/* LuCI's AbstractValue.parse (every option counts as active) */
		parse(section_id) {
			if (!this.isValid(section_id))
				return Promise.reject(new TypeError(`Option "${this.title}" contains an invalid input value.`));
			const cval = this.load(section_id);
			const fval = this.formvalue(section_id);
			if (fval == null || fval === '' || (fval == this.default && (this.optional || this.rmempty))) {
				if (this.rmempty || this.optional)
					return Promise.resolve(this.remove(section_id));
				return Promise.reject(new TypeError(`Option "${this.title}" must not be empty.`));
			}
			if (cval !== fval)
				return Promise.resolve(this.write(section_id, fval));
			return Promise.resolve();
		}
	}
	class Value extends AbstractValue {}
	class ListValue extends Value {}
	class DynamicList extends Value {}
	class DummyValue extends Value {}
	class Flag extends Value {
		constructor() { super(...arguments); this.enabled = '1'; this.disabled = '0'; this.default = '0'; }
		/* LuCI's Flag.parse: a value equal to the default is removed (rmempty, optional), any
		 * other is written, changed or not */
		parse(section_id) {
			const fval = this.formvalue(section_id);
			if (fval == this.default && (this.optional || this.rmempty))
				return Promise.resolve(this.remove(section_id));
			return Promise.resolve(this.write(section_id, fval));
		}
	}

	class AbstractSection {
		constructor(map, ...args) {
			this.map = map;
			this.children = [];
			this.tabs = {};
			this.args = args;
		}
		tab(name, title, description) {
			if (this.tabs[name])
				throw new Error('Tab already declared: ' + name);
			this.tabs[name] = { title, description };
		}
		option(cls, ...args) {
			if (!(cls.prototype instanceof AbstractValue))
				throw new TypeError('not an option class');
			const o = new cls(this.map, this, ...args);
			this.children.push(o);
			return o;
		}
		taboption(tab, cls, ...args) {
			if (!this.tabs[tab])
				throw new ReferenceError('Associated tab not declared: ' + tab);
			const o = this.option(cls, ...args);
			o.tab = tab;
			return o;
		}
		/* the values typed in the form; tests set them in `formvalues` */
		formvalue(section_id, option) {
			return (this.formvalues && this.formvalues[section_id]) ? this.formvalues[section_id][option] : null;
		}
		parse() {
			return Promise.all(this.ids().flatMap(sid => this.children.map(o => o.parse(sid))));
		}
		addModalOptions(modalSection, section_id) {}
	}
	class TypedSection extends AbstractSection {
		constructor(map, type, title, description) { super(map); Object.assign(this, { sectiontype: type, title, description }); }
		ids() { return Object.keys(this.formvalues || {}); }
	}
	class TableSection extends TypedSection {}
	class GridSection extends TableSection {}
	class NamedSection extends AbstractSection {
		constructor(map, name, type, title, description) { super(map); Object.assign(this, { section: name, sectiontype: type, title, description }); }
		ids() { return [ this.section ]; }
	}

	class Map {
		constructor(config, title, description) {
			Object.assign(this, { config, title, description, children: [], parsechain: [ config ], data: uci });
			maps.push(this);
		}
		section(cls, ...args) {
			if (!(cls.prototype instanceof AbstractSection))
				throw new TypeError('not a section class');
			const s = new cls(this, ...args);
			this.children.push(s);
			return s;
		}
		chain(config) { if (!this.parsechain.includes(config)) this.parsechain.push(config); }
		render() { return Promise.resolve(E('div', { 'class': 'cbi-map', 'id': 'cbi-' + this.config })); }
		parse() { return Promise.all(this.children.map(s => s.parse())); }
		load() { return this.data.load(this.parsechain); }
		/* LuCI's Map.save(cb, silent) (silent: the error is only in the rejection) */
		save(cb, silent) {
			return this.parse().then(cb).then(() => this.data.save()).then(() => this.load());
		}
	}

	/*
	 * A GridSection's dialog as form.js makes it (renderMoreOptionsModal): a Map of its own with
	 * a NamedSection holding copies of the options, then the section's addModalOptions.  save()
	 * is the dialog's Save (handleModalSave: 'closed', or 'open' when the save was rejected);
	 * cancel() its Dismiss (handleModalCancel: a section added for it is removed again).
	 */
	function openModal(grid, section_id, formvalues, added) {
		const m = new Map(grid.map.config);
		maps.pop();
		const s = m.section(NamedSection, section_id, grid.sectiontype);
		Object.assign(m, { parent: grid.map, section: section_id });
		for (const o1 of grid.children) {
			const o2 = s.option(o1.constructor, o1.option, o1.title, o1.description);
			for (const k of Object.keys(o1))
				if (![ 'map', 'section', 'option', 'title', 'description' ].includes(k))
					o2[k] = o1[k];
		}
		s.formvalues = { [section_id]: formvalues };
		return Promise.resolve(grid.addModalOptions(s, section_id)).then(() => ({
			section: s,
			save: () => m.save(null, true).then(() => 'closed', () => 'open'),
			cancel: () => {
				if (added)
					uci.remove(grid.map.config, section_id);
				return 'closed';
			}
		}));
	}

	return {
		maps,
		openModal,
		form: { Map, TypedSection, TableSection, GridSection, NamedSection, AbstractValue, Value, ListValue, DynamicList, DummyValue, Flag },
		widgets: {
			/* tools.widgets' NetworkSelect: netifd's interfaces (none here), "unspecified" else */
			NetworkSelect: class NetworkSelect extends ListValue {
				textvalue(section_id) {
					const v = this.cfgvalue(section_id);
					const known = (this.networks || []).some(n => n.getName() == v);
					return E('em', {}, [ known ? v : 'unspecified' ]);
				}
			},
			DeviceSelect: class DeviceSelect extends ListValue {},
			ZoneSelect: class ZoneSelect extends ListValue {}
		}
	};
}

/*
 * uci: an in-memory copy of LuCI's uci.js semantics the views rely on.  save() stages what was
 * changed since the last save (`staged`, as rpcd holds it until Save & Apply), then re-reads the
 * changed configs, as uci.js does; reading a config in `unreadable` is refused as rpcd refuses
 * it (bonding_secrets: no ACL grants reading it), which rejects the save after the staging.
 */
function makeUci(data, unreadable) {
	const log = [];
	const staged = [];
	let saved = 0;
	const values = JSON.parse(JSON.stringify(data || {}));
	const denied = unreadable || [ 'bonding_secrets' ];
	const uci = {
		log,
		staged,
		values,
		unset(conf, sid, opt) {
			log.push([ 'unset', conf, sid, opt ]);
			const s = values[conf] && values[conf][sid];
			if (s)
				delete s[opt];
		},
		load(confs) {
			const bad = [].concat(confs).filter(c => denied.includes(c));
			return bad.length ? Promise.reject(new Error(`uci get ${bad[0]}: Permission denied`)) : Promise.resolve();
		},
		save() {
			const fresh = log.slice(saved);
			saved = log.length;
			staged.push(...fresh);
			return uci.load(Array.from(new Set(fresh.map(c => c[1]))));
		},
		/* uci.js's sections(conf, type): the sections (of that type), in file order */
		sections(conf, type) {
			return Object.entries(values[conf] || {})
				.filter(([ , s ]) => type == null || s['.type'] === type)
				.map(([ sid, s ]) => Object.assign({ '.name': sid }, s));
		},
		get(conf, sid, opt) {
			const s = values[conf] && values[conf][sid];
			if (!s)
				return null;
			return opt == null ? s : (s[opt] != null ? s[opt] : null);
		},
		set(conf, sid, opt, val) {
			log.push([ 'set', conf, sid, opt, val ]);
			const s = values[conf] && values[conf][sid];
			if (!s)
				return;	/* uci.js only sets options of existing (or just created) sections */
			s[opt] = val;
		},
		add(conf, type, name) {
			log.push([ 'add', conf, type, name ]);
			values[conf] = values[conf] || {};
			values[conf][name] = values[conf][name] || { '.type': type, '.name': name };
			return name;
		},
		remove(conf, sid) {
			log.push([ 'remove', conf, sid ]);
			if (values[conf])
				delete values[conf][sid];
		}
	};
	return uci;
}

function readJSON(rel) {
	return JSON.parse(fs.readFileSync(path.join(APP, rel), 'utf8'));
}

function fixture(name) {
	return JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', name), 'utf8'));
}

/* rendered text, with whitespace runs collapsed */
function text(node) {
	return node.textContent.replace(/\s+/g, ' ').trim();
}

/* nested Promise chains (then → then → ...) settle within a few microtask turns; be generous */
async function settle() {
	for (let i = 0; i < 20; i++)
		await Promise.resolve();
	await new Promise(r => setImmediate(r));
}

module.exports = {
	REPO, APP, HTDOCS, Node, Text, E, dom, loadView, loadModule, makeRpc, ubusStatus, makePoll, makeUi, makeL,
	viewModule, baseclass, instantiate, makeForm, makeUci, readJSON, fixture, text, settle
};
