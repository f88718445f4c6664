'use strict';
'require view';
'require dom';
'require poll';
'require form';
'require uci';
'require bonding.rpc as brpc';
'require bonding.rulevalidators as rv';
'require bonding.config.options as options';

/*
 * Services → Bonding → Rules: the `config rule` sections of /etc/config/bonding (what leaves by
 * which WAN: python/bonding/config/rules.py, README "Pinning"), validated here as bondingd
 * validates them, and beside each rule what it does now and why, from bondingd's status
 * (`rules`: effective, why), refreshed every few seconds.  The first rule that matches decides,
 * so the rows can be dragged into order.  Save & Apply commits the file; bondingd reloads it.
 */

const POLL_INTERVAL = 5;

/* The name bondingd gives a rule: its option name, else the section's name. */
function ruleName(section_id) {
	return uci.get('bonding', section_id, 'name') || section_id;
}

/* The path sections' names (empty: bondingd takes the paths from netifd). */
function pathSections() {
	return uci.sections('bonding', 'path').map(s => s['.name']);
}

/* The words of the Now cell of one rule, from bondingd's status. */
function nowText(st, section_id) {
	if (uci.get('bonding', section_id, 'enabled') === '0')
		return [ 'off', _('disabled') ];
	if (!st || !Array.isArray(st.rules))
		return [ 'unknown', _('bondingd is not running') ];
	const r = st.rules.find(x => x.name === ruleName(section_id));
	if (r)
		return [ r.effective, '%s: %s'.format(r.effective, r.why) ];
	const problems = (st.config_problems || []).filter(p => p.indexOf('.' + section_id + '.') >= 0 ||
		p.indexOf('.' + section_id + ':') >= 0);
	if (problems.length)
		return [ 'refused', _('refused by bondingd: %s').format(problems.join('; ')) ];
	return [ 'pending', _('not applied yet: Save & Apply') ];
}

function nowCell(st, section_id) {
	const [ state, words ] = nowText(st, section_id);
	return E('span', { 'class': 'bonding-rule-now', 'data-rule': section_id, 'data-state': state }, [ words ]);
}

function matchOptions(s) {
	let o = s.option(form.DynamicList, 'src_mac', _('Source MAC'),
		_('LAN devices by their MAC address. A rule with no address match acts on the device\'s IPv6 too.'));
	o.validate = (section_id, value) => rv.mac(value);
	o.placeholder = 'aa:bb:cc:dd:ee:ff';

	o = s.option(form.DynamicList, 'src_ip', _('Source address'),
		_('LAN IPv4 addresses or networks, like 192.168.1.20 or 192.168.1.0/28.'));
	o.validate = (section_id, value) => rv.ipv4(value);
	o.placeholder = '192.168.1.20';

	o = s.option(form.DynamicList, 'dest_ip', _('Destination address'),
		_('IPv4 addresses or networks, like 198.51.100.0/24. Not together with destination domains: make two rules.'));
	o.validate = (section_id, value) => rv.ipv4(value);
	o.placeholder = '198.51.100.0/24';

	o = s.option(form.DynamicList, 'dest_domain', _('Destination domain'),
		_('A name and its subdomains, as the router\'s dnsmasq resolves them: a device matches once it asks dnsmasq after the rule exists (not with its own DNS or a cached answer).'));
	o.validate = function(section_id, value) {
		const dest = [].concat(this.section.formvalue(section_id, 'dest_ip') || []).filter(v => v !== '');
		if (dest.length && value != null && value !== '')
			return _('A rule matches destination addresses or domains, not both: make two rules');
		return rv.domain(value);
	};
	o.placeholder = 'example.com';
	o.modalonly = true;

	o = s.option(form.ListValue, 'proto', _('Protocol'));
	o.value('any', _('any'));
	o.value('tcp', 'TCP');
	o.value('udp', 'UDP');
	o.default = 'any';

	o = s.option(form.DynamicList, 'dest_port', _('Destination port'),
		_('A port or a range, like 443 or 8000-8100 (TCP and UDP when the protocol is any).'));
	o.validate = (section_id, value) => rv.port(value);
	o.placeholder = '443';
	o.modalonly = true;
}

function actionOptions(s, paths) {
	let o = s.option(form.ListValue, 'action', _('Action'),
		_('Bond: through the proxy, as if no rule matched. Bypass: natively, by any live WAN. A link: natively through that WAN only; the target sees its address.'));
	o.value('bond', _('bond'));
	o.value('bypass', _('bypass'));
	for (const p of paths)
		o.value('path:' + p, _('link %s').format(p));
	/* an action of the file that names no link bondingd knows stays as it is (and is refused) */
	for (const r of uci.sections('bonding', 'rule'))
		if (r.action && o.keylist.indexOf(r.action) < 0)
			o.value(r.action);
	o.default = 'bond';
	o.rmempty = true;
	o.validate = function(section_id, value) {
		const path = this.section.formvalue(section_id, 'path');
		if (path != null && path !== '' && value !== 'bond' && value !== 'path:' + path)
			return _('Contradicts the link option %s: keep one of them').format(path);
		return rv.action(value, pathSections());
	};

	o = s.option(form.ListValue, 'fallback', _('While the link is down'),
		_('What a rule pinned to a link does while that link is down: bond it, send it natively by any live WAN, or drop it.'));
	o.value('bond', _('bond'));
	o.value('any', _('any live WAN'));
	o.value('drop', _('drop'));
	o.default = 'bond';

	o = s.option(form.Flag, 'block_quic', _('Block QUIC'),
		_('Refuse UDP to port 443 from what the rule matches, so that browsers fall back to TCP, which bonds.'));
	o.default = o.disabled;

	o = s.option(form.Value, 'path', _('Link (same as action)'),
		_('Option path \'wan2\' is the same as action path:wan2; files written by hand may use it.'));
	o.modalonly = true;
	o.validate = function(section_id, value) {
		const ok = rv.name(value);
		if (ok !== true || value == null || value === '')
			return ok;
		return rv.action('path:' + String(value).trim(), pathSections());
	};

	o = s.option(form.Value, 'name', _('Name in status'),
		_('The rule\'s name in status and bondingctl. Empty: the name of this entry.'));
	o.modalonly = true;
	o.validate = function(section_id, value) {
		const ok = rv.name(value);
		if (ok !== true)
			return ok;
		const mine = (value == null || value === '') ? section_id : String(value).trim();
		const other = uci.sections('bonding', 'rule').find(x => x['.name'] !== section_id &&
			(x.name || x['.name']) === mine);
		return other ? _('Another rule is named %s: give each rule its own name').format(mine) : true;
	};
}

return view.extend({
	load: function() {
		return Promise.all([ brpc.status(), uci.load('bonding') ]);
	},

	render: function(data) {
		/* LuCI marks the footer's Save & Apply disabled on a read-only page, but its click
		 * handler still runs: a read-only page gets no footer at all */
		if (L.hasViewPermission() !== true)
			this.handleSaveApply = this.handleSave = this.handleReset = null;

		this.status = (data && data[0]) || {};
		/* the links a rule can name: the path sections, else the paths bondingd took from netifd */
		const paths = pathSections().length ? pathSections() : Object.keys(this.status.paths || {});

		const m = new form.Map('bonding', _('Bonding rules'),
			_('What a LAN device or a destination sends, and by which WAN. The first rule that matches a connection decides; connections that match no rule are bonded. A change moves new connections only.'));

		const s = options.gridSection(m, 'rule', _('Rules'), undefined, _('Add rule'));
		s.sortable = true;

		matchOptions(s);
		actionOptions(s, paths);

		const o = s.option(form.DummyValue, '_now', _('Now'),
			_('What bondingd does with the rule now, and why.'));
		o.modalonly = false;
		o.write = o.remove = function() {};
		o.textvalue = L.bind(function(section_id) { return nowCell(this.status, section_id); }, this);

		poll.add(L.bind(this.poll, this), POLL_INTERVAL);
		return m.render();
	},

	/* The Now cells anew from bondingd's status. */
	poll: function() {
		return brpc.status().then(L.bind(function(st) {
			this.status = st;
			for (const cell of document.querySelectorAll('.bonding-rule-now')) {
				const fresh = nowCell(st, cell.getAttribute('data-rule'));
				cell.setAttribute('data-state', fresh.getAttribute('data-state'));
				dom.content(cell, fresh.textContent);
			}
		}, this));
	}
});
