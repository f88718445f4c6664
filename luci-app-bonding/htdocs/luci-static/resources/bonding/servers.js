'use strict';
'require baseclass';
'require bonding.format as fmt';

/*
 * The "Server and proxy" part of the status page: which aggregation server is active and why,
 * every server with its state, reason and RTT, and the proxy's state.
 */

/* A server's state in words, where bondingd gave no reason. */
function serverWords(state) {
	switch (state) {
	case 'active':   return _('New connections go through this server.');
	case 'standby':  return _('Ready to take over when the active server stops answering.');
	case 'down':     return _('Does not answer through any link.');
	case 'disabled': return _('Disabled in the configuration.');
	default:         return _('bondingd reported an unknown state.');
	}
}

function headRow() {
	const head = [ _('Server'), _('State'), _('Reason'), _('Address'), _('Protocol'), _('RTT'), _('In state for') ];
	return E('tr', { 'class': 'tr table-titles' }, head.map(h => E('th', { 'class': 'th' }, [ h ])));
}

function serverRow(s) {
	/* An older bondingd gives no state: enabled or not is all there is. */
	const state = String(s.state || (s.enabled === false ? 'disabled' : 'standby'));
	const paths = fmt.isObject(s.paths) ? s.paths : {};
	const perPath = Object.keys(paths).sort().map(n => fmt.isObject(paths[n]) && paths[n].ok
		? '%s %s'.format(n, fmt.formatMs(paths[n].rtt_ms))
		: '%s %s'.format(n, (fmt.isObject(paths[n]) && paths[n].error) || _('no answer')));

	return E('tr', { 'class': 'tr', 'data-server': String(s.name), 'data-state': state }, [
		E('td', { 'class': 'td', 'data-title': _('Server') }, [
			E('strong', {}, [ String(s.name) ]),
			fmt.isNum(s.priority) ? E('div', { 'style': 'opacity:.8' }, [ _('priority %d').format(s.priority) ]) : ''
		]),
		E('td', { 'class': 'td', 'data-title': _('State') }, [ fmt.badge(state) ]),
		E('td', { 'class': 'td bonding-reason', 'data-title': _('Reason'), 'style': 'min-width:14em' }, [
			s.reason ? String(s.reason) : serverWords(state)
		]),
		E('td', { 'class': 'td', 'data-title': _('Address') }, [ '%s:%s'.format(s.address, s.port) ]),
		E('td', { 'class': 'td', 'data-title': _('Protocol') }, [ String(s.protocol || '–') ]),
		E('td', { 'class': 'td', 'data-title': _('RTT'), 'title': perPath.join(', ') }, [ fmt.formatMs(s.rtt_ms) ]),
		E('td', { 'class': 'td', 'data-title': _('In state for') }, [ fmt.formatSince(s.since) ])
	]);
}

function activeLine(active) {
	return E('p', { 'id': 'bonding-active-server', 'data-server': active.name || '' }, [
		E('strong', {}, [ _('Active server') ]), ' ',
		active.name ? String(active.name) : E('em', {}, [ _('none') ]),
		active.reason ? ': %s'.format(active.reason) : '',
		' ',
		E('small', {}, [ active.failback == 'stay'
			? _('(after a failover the server in use stays until it fails)')
			: _('(back to a preferred server once it has answered for %d s)').format(active.hold_s) ])
	]);
}

function proxyLine(proxy) {
	if (!proxy)
		return E('p', { 'id': 'bonding-proxy' }, [ E('em', {}, [ _('bondingd reports no proxy state.') ]) ]);

	const pstate = String(proxy.state || 'unknown');
	const style = { running: 'up', stopped: 'disabled', disabled: 'disabled', failed: 'down' }[pstate];

	return E('p', { 'id': 'bonding-proxy', 'data-state': pstate }, [
		E('strong', {}, [ _('Proxy') ]), ' ',
		String(proxy.backend || '–'), ' ',
		proxy.server ? _('to server %s').format(proxy.server) : '', ' ',
		E('span', {
			'class': 'bonding-badge',
			'style': fmt.stateStyle(style) + ';border-radius:3px;padding:1px 6px'
		}, [ {
			running: _('running'), stopped: _('stopped'), failed: _('failed'), disabled: _('disabled')
		}[pstate] || pstate ]),
		' ',
		fmt.isNum(proxy.pid) ? _('PID %d').format(proxy.pid) : '',
		' ',
		fmt.isNum(proxy.restarts) && proxy.restarts > 0 ? _('%d restarts').format(proxy.restarts) : '',
		' ',
		fmt.isNum(proxy.since) ? _('for %s').format(fmt.formatSince(proxy.since)) : '',
		proxy.error ? E('div', { 'class': 'alert-message warning' }, [ String(proxy.error) ]) : ''
	]);
}

return baseclass.extend({
	/* The active server, the servers' table and the proxy line of status reply `st`. */
	render: function(st) {
		const servers = Array.isArray(st.servers) ? st.servers : [];
		const proxy = fmt.isObject(st.proxy) ? st.proxy : null;
		const active = fmt.isObject(st.active_server) ? st.active_server : null;
		const out = [];

		if (active)
			out.push(activeLine(active));

		out.push(servers.length
			? E('table', { 'class': 'table', 'id': 'bonding-servers' }, [ headRow() ].concat(servers.map(serverRow)))
			: E('p', {}, [ E('em', {}, [ _('No aggregation server configured.') ]) ]));

		out.push(proxyLine(proxy));
		return out;
	}
});
