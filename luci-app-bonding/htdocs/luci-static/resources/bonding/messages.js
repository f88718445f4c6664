'use strict';
'require baseclass';

/*
 * The notices at the top of the status page: bonding disabled, fail-open, the problems bondingd
 * found in /etc/config/bonding, its errors; and the one shown when the daemon cannot be reached.
 */

function list(id, title, items) {
	return E('div', { 'class': 'alert-message warning', 'id': id }, [
		E('strong', {}, [ title ]),
		E('ul', {}, items.map(p => E('li', {}, [ String(p) ])))
	]);
}

return baseclass.extend({
	/* The notices of status reply `st`, none when all is well. */
	render: function(st) {
		const msgs = [];

		if (st.enabled === false)
			msgs.push(E('div', { 'class': 'alert-message notice' }, [
				_('Bonding is disabled in the configuration: links are not probed and traffic is not bonded.')
			]));

		if (st.fail_open)
			msgs.push(E('div', { 'class': 'alert-message warning', 'id': 'bonding-fail-open' }, [
				_('Fail-open: the proxy is not working, so LAN traffic goes out directly, without bonding.')
			]));

		const problems = Array.isArray(st.config_problems) ? st.config_problems : [];
		if (problems.length)
			msgs.push(list('bonding-config-problems', _('Problems in /etc/config/bonding:'), problems));

		const errors = Array.isArray(st.errors) ? st.errors : [];
		if (errors.length)
			msgs.push(list('bonding-errors', _('Errors:'), errors));

		return msgs;
	},

	/* The daemon is down: say so, how to start it, and the error of the call. */
	down: function(error) {
		return E('div', { 'class': 'alert-message warning', 'id': 'bonding-down' }, [
			E('strong', {}, [ _('The bonding daemon is not running or cannot be reached.') ]),
			' ',
			_('Start it with "/etc/init.d/bonding start" and look at "logread -e bondingd". The configuration pages work without it.'),
			error ? E('div', { 'style': 'opacity:.8' }, [ _('Error: %s').format(error) ]) : ''
		]);
	}
});
