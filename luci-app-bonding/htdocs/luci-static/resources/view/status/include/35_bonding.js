'use strict';
'require baseclass';
'require bonding.rpc as bondingRpc';
'require bonding.format as fmt';

/* Status → Overview: one box with the bonded links at a glance. */

return baseclass.extend({
	title: _('Bonding'),

	/* Never rejects: the overview hides an include whose load() failed for good. */
	load: function() {
		return bondingRpc.status().then(function(st) {
			return { status: st, error: null };
		}, function(err) {
			return { status: null, error: fmt.errorText(err) };
		});
	},

	render: function(res) {
		const st = res ? res.status : null;

		if (!fmt.isObject(st) || !fmt.isObject(st.paths)) {
			/* A user without the bonding ACL sees no box at all. */
			if (res && res.error && /-32002|Access denied/.test(res.error))
				return null;

			return E('p', { 'id': 'bonding-overview-down' }, [
				E('em', {}, [ _('The bonding daemon is not running or cannot be reached.') ])
			]);
		}

		const names = Object.keys(st.paths);
		let up = 0, degraded = 0, rx = 0, tx = 0;

		for (const name of names) {
			const p = fmt.isObject(st.paths[name]) ? st.paths[name] : {};
			if (p.state == 'up')
				up++;
			else if (p.state == 'degraded')
				degraded++;
			if (fmt.isNum(p.rx_bps))
				rx += p.rx_bps;
			if (fmt.isNum(p.tx_bps))
				tx += p.tx_bps;
		}

		const proxy = fmt.isObject(st.proxy) ? st.proxy : null;
		const fields = [
			_('Links up'), degraded
				? _('%d of %d (%d degraded)').format(up, names.length, degraded)
				: _('%d of %d').format(up, names.length),
			_('Download'), fmt.formatRate(rx),
			_('Upload'), fmt.formatRate(tx)
		];

		if (proxy)
			fields.push(_('Proxy'), '%s (%s)'.format(proxy.backend || '–', proxy.state || '?'));

		if (st.enabled === false)
			fields.push(_('Bonding'), _('disabled in the configuration'));

		if (st.fail_open)
			fields.push(_('Bonding'), _('fail-open: traffic is not bonded'));

		const table = E('table', { 'class': 'table', 'id': 'bonding-overview' });

		for (let i = 0; i < fields.length; i += 2)
			table.appendChild(E('tr', { 'class': 'tr' }, [
				E('td', { 'class': 'td left', 'width': '33%' }, [ fields[i] ]),
				E('td', { 'class': 'td left' }, [ fields[i + 1] ])
			]));

		return table;
	}
});
