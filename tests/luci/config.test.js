'use strict';
/* The configuration view (view/bonding/config.js): the form it builds, validated as LuCI would. */
const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('./harness');
const dt = require('./datatypes');

/* opts.setKey(args): bondingd's answer to set_key (default: stored) */
async function openConfig(opts) {
	opts = Object.assign({ writable: true, uci: {}, setKey: () => ({ stored: true }) }, opts);
	const uci = h.makeUci(opts.uci);
	const f = h.makeForm(uci);
	const ui = h.makeUi();
	const rpc = h.makeRpc((decl, args) => {
		if (decl.method === 'set_key')
			return opts.setKey(args);
		throw new Error(`unexpected call ${decl.method}`);
	});
	const loaded = h.loadView('view/bonding/config.js', {
		L: h.makeL(opts.writable),
		modules: { view: h.viewModule, form: f.form, rpc, ui, uci, 'tools.widgets': f.widgets }
	});
	const view = h.instantiate(loaded.result);
	const node = await view.render(view.load ? await view.load() : null);
	assert.equal(f.maps.length, 1, 'one form.Map');
	const map = f.maps[0];
	const section = type => map.children.find(s => s.sectiontype === type);
	const option = (type, name) => section(type).children.find(o => o.option === name);
	return { map, node, uci, f, rpc, ui, section, option, view };
}

function allOptions(map) {
	return map.children.flatMap(s => s.children.map(o => ({ s, o })));
}

test('one form.Map for /etc/config/bonding with globals, servers, links and USB', async () => {
	const { map, section } = await openConfig();
	assert.equal(map.config, 'bonding');
	assert.deepEqual(map.children.map(s => [ s.constructor.name, s.sectiontype ]), [
		[ 'NamedSection', 'globals' ], [ 'GridSection', 'server' ], [ 'GridSection', 'path' ], [ 'NamedSection', 'usb' ]
	]);
	assert.equal(section('globals').section, 'globals');
	assert.equal(section('usb').section, 'usb');
	for (const type of [ 'server', 'path' ]) {
		assert.equal(section(type).addremove, true);
		assert.equal(section(type).anonymous, false, 'named sections: bondingd and bonding_secrets key on the name');
	}
});

test('every text option is validated with a LuCI datatype or a validate function', async () => {
	const { map } = await openConfig();
	for (const { s, o } of allOptions(map)) {
		if (o.constructor.name === 'Flag' || o.constructor.name === 'ListValue')
			continue;
		assert.ok(o.datatype || typeof o.validate === 'function', `${s.sectiontype}.${o.option} is validated`);
		if (o.datatype)
			assert.doesNotThrow(() => dt.parse(o.datatype), `${s.sectiontype}.${o.option}: ${o.datatype}`);
	}
});

test('datatypes accept what bondingd accepts and refuse the rest', async () => {
	const { option } = await openConfig();
	const cases = [
		[ 'globals', 'probe_interval_ms', [ '20', '150', '60000' ], [ '19', '60001', '1.5', 'abc', '-5' ] ],
		[ 'globals', 'degraded_loss_pct', [ '1', '100' ], [ '0', '101' ] ],
		[ 'globals', 'degraded_rtt_factor', [ '1', '3.0', '100' ], [ '0.5', '101', 'x' ] ],
		[ 'globals', 'mptcp_subflows', [ '0', '8' ], [ '9' ] ],
		[ 'globals', 'probe_target', [ '1.1.1.1', '2606:4700:4700::1111' ],
		  [ '1.1.1.1/24', '256.1.1.1', 'one.one', '2001:db8::/64' ] ],
		[ 'globals', 'bypass', [ '10.0.0.0/8', '192.0.2.1' ], [ '10.0.0.0/33', 'lan', 'fd00::/8' ] ],
		[ 'globals', 'bypass6', [ 'fd00::/8', '2001:db8::7', '::/127' ],
		  [ 'fd00::/129', '10.0.0.0/8', 'lan', '1:2:3:4:5:6:7:8:9' ] ],
		[ 'server', 'address6', [ '2001:db8:203::10' ], [ '203.0.113.10', '2001:db8::/64' ] ],
		[ 'path', 'gateway6', [ 'fe80::1', '2001:db8:64:1::1' ], [ '100.64.1.1', 'fe80::1/64' ] ],
		[ 'path', 'probe_target', [ '192.0.2.7', '2001:db8::9' ], [ 'x' ] ],
		[ 'globals', 'tproxy_port', [ '1', '65535' ], [ '0', '65536' ] ],
		[ 'globals', 'lan_device', [ 'br-lan', 'eth0.1' ], [ 'a b', 'sixteen-chars-xx' ] ],
		[ 'server', 'address', [ '203.0.113.10', 'vps.example.org' ], [ 'not a host', '' ] ],
		[ 'server', 'port', [ '65101' ], [ '0', '70000' ] ],
		[ 'path', 'download_kbit', [ '1', '100000000' ], [ '0', '100000001' ] ],
		[ 'path', 'gateway', [ '100.64.1.1' ], [ '100.64.1.0/24' ] ],
		[ 'path', 'device', [ 'eth1', 'pppoe-wan' ], [ 'eth 1', '..' ] ],
		[ 'usb', 'metric_base', [ '1', '1000' ], [ '0', '1001' ] ]
	];
	for (const [ type, name, good, bad ] of cases) {
		const o = option(type, name);
		assert.ok(o, `${type}.${name} exists`);
		for (const v of good)
			assert.equal(dt.validate(o.datatype, v), true, `${type}.${name} accepts ${v}`);
		for (const v of bad)
			assert.equal(dt.validate(o.datatype, v), false, `${type}.${name} refuses ${v}`);
	}
	/* validate functions: [ section, option, accepted, refused (value and why) ] */
	const validated = [
		[ 'globals', 'tproxy_mark', [ '0xb0', '176', '0xb0/0xff' ], [
			[ '0' ], [ '0x1ffffffff' ], [ 'b0' ],
			[ '0xb0/0x0f', 'mark bits outside the mask' ], [ '0x40000000', 'bit 31 must stay free' ] ] ],
		[ 'globals', 'bypass', [ '10.0.0.0/8', '192.0.2.7' ], [ [ '10.1.2.3/8', 'host bits set' ] ] ],
		[ 'globals', 'bypass6', [ 'fd00::/8', '2001:db8:64::/47', '2001:db8::7' ], [
			[ 'fd00::1/8', 'host bits set' ], [ '2001:db8:65::/47', 'host bits set' ] ] ],
		[ 'globals', 'congestion_control', [ 'bbr' ], [ [ 'BBR!' ] ] ],
		[ 'path', 'congestion_control', [ 'cubic', '' ], [ [ 'CUBIC' ] ] ],
		[ 'usb', 'apn', [ 'internet', '' ], [ [ '.internet' ], [ 'a b' ] ] ]
	];
	for (const [ type, name, good, bad ] of validated) {
		const o = option(type, name);
		for (const v of good)
			assert.equal(o.validate(type, v), true, `${type}.${name} accepts ${v}`);
		for (const [ v, why ] of bad)
			assert.notEqual(o.validate(type, v), true, `${type}.${name} refuses ${v}${why ? ': ' + why : ''}`);
	}
});

test('thresholds explain what they mean', async () => {
	const { section } = await openConfig();
	for (const o of section('globals').children.filter(o => [ 'probing', 'thresholds' ].includes(o.tab)))
		assert.ok(o.description && o.description.length > 30, `globals.${o.option} has a description`);
});

test('a link needs an interface or a device; the interface comes from netifd', async () => {
	const { section, option } = await openConfig();
	const iface = option('path', 'interface');
	assert.equal(iface.constructor.name, 'NetworkSelect');
	assert.equal(iface.nocreate, true);
	const s = section('path');
	s.formvalues = { wan: { device: '' } };
	assert.notEqual(iface.validate('wan', ''), true);
	assert.equal(iface.validate('wan', 'wan'), true);
	s.formvalues = { wan: { device: 'eth1' } };
	assert.equal(iface.validate('wan', ''), true);
	assert.equal(option('path', 'backup').title, 'Forced backup');
});

test('the links grid shows a link by device as its device, not "unspecified"', async () => {
	const { option } = await openConfig({ uci: { bonding: {
		wan: { '.type': 'path', '.name': 'wan', interface: 'wan', device: 'wan1' },
		wanb: { '.type': 'path', '.name': 'wanb', device: 'wan2' },
		nothing: { '.type': 'path', '.name': 'nothing' }
	} } });
	const text = sid => {
		const v = option('path', 'interface').textvalue(sid);
		return (v && typeof v === 'object') ? h.text(v) : String(v);
	};
	assert.equal(text('wanb'), 'device wan2');
	assert.equal(text('wan'), 'wan (wan1)', 'an interface netifd does not list: its name');
	assert.equal(text('nothing'), 'unspecified');
});

test('the servers grid shows the priority and port bondingd uses when they are unset', async () => {
	const { option } = await openConfig({ uci: { bonding: {
		vps1: { '.type': 'server', '.name': 'vps1', address: '203.0.113.10' },
		vps2: { '.type': 'server', '.name': 'vps2', address: '198.51.100.20', priority: '20', port: '443' }
	} } });
	assert.equal(option('server', 'priority').textvalue('vps1'), '10 (default)');
	assert.equal(option('server', 'port').textvalue('vps1'), '65101 (default)');
	assert.equal(option('server', 'priority').textvalue('vps2'), '20');
	assert.equal(option('server', 'port').textvalue('vps2'), '443');
});

/* /etc/config/bonding as the package installs it (package/bonding/files/bonding.config) */
const SHIPPED = { bonding: {
	globals: { '.type': 'globals', '.name': 'globals', enabled: '1', log_level: 'info', probe_interval_ms: '150',
		down_count: '3', down_window: '5', up_count: '5' },
	wan: { '.type': 'path', '.name': 'wan', interface: 'wan', enabled: '1', backup: '0', congestion_control: 'cubic' },
	usb: { '.type': 'usb', '.name': 'usb', auto_dhcp: '1', modem_mbim: '1', metric_base: '40' }
} };

/* the form as it shows config `cfg` (unset flags at their default), as formvalues */
function showForm(c, cfg) {
	for (const s of c.map.children) {
		const ids = s.section ? [ s.section ] : Object.keys(cfg.bonding).filter(k => cfg.bonding[k]['.type'] === s.sectiontype);
		s.formvalues = {};
		for (const sid of ids) {
			s.formvalues[sid] = {};
			for (const o of s.children) {
				const v = c.uci.get('bonding', sid, o.option);
				s.formvalues[sid][o.option] = (v != null) ? v : (o.constructor.name === 'Flag' ? o.default : null);
			}
		}
	}
}

test('a save writes only what the user changed (nothing written or dropped for its default)', async () => {
	for (const cfg of [ SHIPPED, { bonding: {
		/* a config without the flags: they stay unset */
		globals: { '.type': 'globals', '.name': 'globals' },
		usb: { '.type': 'usb', '.name': 'usb' }
	} } ]) {
		const c = await openConfig({ uci: cfg });
		showForm(c, cfg);
		c.section('globals').formvalues.globals.down_count = '4';	/* the one value typed */
		await c.map.save(null, true);
		/* (unsetting an option that is not there changes nothing) */
		assert.deepEqual(c.uci.staged.filter(x => x[0] !== 'unset' || cfg.bonding[x[2]][x[3]] != null),
			[ [ 'set', 'bonding', 'globals', 'down_count', '4' ] ]);
	}
	/* a flag the user changes is written, also back to its default */
	const c = await openConfig({ uci: SHIPPED });
	showForm(c, SHIPPED);
	c.section('usb').formvalues.usb.auto_dhcp = '0';
	c.section('path').formvalues.wan.backup = '1';
	await c.map.save(null, true);
	assert.deepEqual(c.uci.staged.filter(x => x[0] === 'set'), [
		[ 'set', 'bonding', 'wan', 'backup', '1' ], [ 'set', 'bonding', 'usb', 'auto_dhcp', '0' ]
	]);
});

test('read-only access: no Save & Apply, Save or Reset (LuCI\'s disabled one still runs)', async () => {
	const ro = await openConfig({ writable: false });
	const rw = await openConfig({ writable: true });
	for (const k of [ 'handleSaveApply', 'handleSave', 'handleReset' ]) {
		assert.equal(ro.view[k], null, k);
		assert.notEqual(rw.view[k], null, k);
	}
});

test('write access: the server key is a write-only field that never goes through uci', async () => {
	const { option, section, uci } = await openConfig({ uci: { bonding_secrets: { vps2: { '.type': 'server', key: 'old' } } } });
	const key = option('server', 'key');
	assert.ok(key, 'key option with write access');
	assert.equal(key.uciconfig, undefined, 'not a uci option: rpcd lets nobody read bonding_secrets');
	assert.equal(key.keystore, 'bondingd');
	assert.equal(key.password, true);
	assert.equal(key.modalonly, true);
	assert.equal(key.load('vps2'), null, 'never read back');
	key.write('vps1', 'c2VjcmV0');
	key.remove('vps2');
	assert.deepEqual(uci.log, [], 'writing or clearing the field stages nothing');

	/* Shadowsocks-2022 keys must be base64 of the cipher's key size */
	const s = section('server');
	s.formvalues = { vps1: { cipher: '2022-blake3-aes-128-gcm' } };
	assert.equal(key.validate('vps1', Buffer.alloc(16, 7).toString('base64')), true);
	assert.notEqual(key.validate('vps1', Buffer.alloc(32, 7).toString('base64')), true);
	assert.notEqual(key.validate('vps1', 'not base64!'), true);
	s.formvalues = { vps1: { cipher: '2022-blake3-aes-256-gcm' } };
	assert.equal(key.validate('vps1', Buffer.alloc(32, 7).toString('base64')), true);
	s.formvalues = { vps1: { cipher: 'chacha20-ietf-poly1305' } };
	assert.notEqual(key.validate('vps1', 'has space'), true);
	assert.notEqual(key.validate('vps1', 'ключ'), true, 'printable ASCII only, as bondingd wants');
	assert.notEqual(key.validate('vps1', 'x'.repeat(257)), true);
	assert.equal(key.validate('vps1', 'password'), true);
	assert.equal(key.validate('vps1', ''), true, 'empty: keep the stored key');
});

/* the server dialog of a new server vps1, as form.js opens it, with these values typed */
async function newServerDialog(opts, typed) {
	const c = await openConfig(opts);
	c.uci.add('bonding', 'server', 'vps1');	/* GridSection.handleAdd */
	const dialog = await c.f.openModal(c.section('server'), 'vps1', Object.assign({
		enabled: '1', address: '203.0.113.10', port: '65101', protocol: 'shadowsocks',
		cipher: '2022-blake3-aes-128-gcm', key: Buffer.alloc(16, 7).toString('base64')
	}, typed), true);
	return Object.assign(c, { dialog });
}

const touches = (changes, conf) => changes.filter(c => c[1] === conf);

test('saving the server dialog hands the key to bondingd, stages only bonding, and closes', async () => {
	const c = await newServerDialog();
	assert.equal(await c.dialog.save(), 'closed', 'the dialog closes: LuCI re-reads only bonding');
	assert.deepEqual(c.rpc.calls.map(x => [ x.method, x.args ]), [
		[ 'set_key', [ 'vps1', Buffer.alloc(16, 7).toString('base64'), '2022-blake3-aes-128-gcm' ] ]
	]);
	assert.deepEqual(touches(c.uci.staged, 'bonding_secrets'), [], 'nothing of bonding_secrets staged');
	assert.ok(touches(c.uci.staged, 'bonding').some(x => x[0] === 'set' && x[3] === 'address'));
	assert.deepEqual(c.ui.notifications, []);
});

test('only a saved dialog sends its key; a refused one is shown and stays open with nothing staged', async () => {
	const c = await newServerDialog({ setKey: () => h.ubusStatus(9) });
	assert.equal(await c.dialog.save(), 'open');
	assert.equal(c.rpc.calls.length, 1);
	assert.equal(c.ui.notifications.length, 1);
	const shown = h.text(c.ui.notifications[0].body);
	assert.match(shown, /key of server vps1 was not stored/);
	assert.match(shown, /ubus code 9/);
	assert.equal(c.ui.notifications[0].cls, 'danger');
	assert.deepEqual(c.uci.staged, [], 'nothing staged: Save & Apply on another tab commits nothing of it');
	/* dismissed after the failure: the new server goes again, nothing was ever staged */
	c.dialog.cancel();
	assert.deepEqual(c.uci.staged, []);
	assert.equal(c.uci.get('bonding', 'vps1'), null);

	/* an invalid field elsewhere: the key is not sent; a dismissed dialog: neither */
	const bad = await newServerDialog({}, { address: 'not a host' });
	assert.equal(await bad.dialog.save(), 'open');
	const gone = await newServerDialog();
	assert.equal(gone.dialog.cancel(), 'closed');
	for (const x of [ bad, gone ]) {
		assert.deepEqual(x.rpc.calls, []);
		assert.deepEqual(x.uci.staged, []);
	}
	/* an empty key field keeps the stored key: no call, the dialog closes */
	const empty = await newServerDialog({}, { key: '' });
	assert.equal(await empty.dialog.save(), 'closed');
	assert.deepEqual(empty.rpc.calls, []);
	assert.deepEqual(touches(empty.uci.staged, 'bonding_secrets'), []);
});

test('read-only access: no key field at all', async () => {
	const { option, map } = await openConfig({ writable: false });
	assert.equal(option('server', 'key'), undefined);
	for (const { o } of allOptions(map))
		assert.notEqual(o.uciconfig, 'bonding_secrets');
});

test('choices cover what bondingd knows', async () => {
	const { option } = await openConfig();
	assert.deepEqual(option('globals', 'proxy').keylist.slice().sort(), [ 'auto', 'none', 'shadowsocks-libev', 'sing-box', 'xray' ]);
	assert.deepEqual(option('globals', 'log_level').keylist, [ 'debug', 'info', 'notice', 'warning', 'error' ]);
	assert.deepEqual(option('server', 'protocol').keylist, [ 'shadowsocks', 'vless' ]);
	assert.ok(option('server', 'cipher').keylist.includes(option('server', 'cipher').default));
});
