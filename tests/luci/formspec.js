'use strict';
/*
 * Prints, as JSON, the options the configuration view builds (section type, option, widget,
 * datatype, placeholder, default, choices) so tests/luci/test_luci.py can hold them against
 * bondingd's own validation in python/bonding/config/.  Not a test itself.
 */
const h = require('./harness');

const f = h.makeForm();
const loaded = h.loadView('view/bonding/config.js', {
	L: h.makeL(true),
	modules: { view: h.viewModule, form: f.form, rpc: h.makeRpc(() => ({})), ui: h.makeUi(), 'tools.widgets': f.widgets }
});

Promise.resolve(h.instantiate(loaded.result).render()).then(() => {
	const out = [];
	for (const map of f.maps)
		for (const s of map.children)
			for (const o of s.children)
				out.push({
					config: o.keystore || o.uciconfig || map.config,
					section: s.sectiontype,
					option: o.option,
					widget: o.constructor.name,
					datatype: o.datatype || null,
					validate: typeof o.validate === 'function',
					placeholder: o.placeholder != null ? String(o.placeholder) : null,
					default: o.default != null ? String(o.default) : null,
					choices: o.keylist
				});
	process.stdout.write(JSON.stringify(out, null, 1) + '\n');
});
