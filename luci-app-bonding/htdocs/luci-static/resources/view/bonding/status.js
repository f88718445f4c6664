'use strict';
'require view';
'require dom';
'require poll';
'require ui';
'require bonding.rpc as bondingRpc';
'require bonding.format as fmt';
'require bonding.rates as rates';
'require bonding.messages as messages';
'require bonding.links as links';
'require bonding.graph as graph';
'require bonding.servers as servers';
'require bonding.details as details';

/*
 * Services → Bonding → Status: what every link is doing and why, refreshed every second
 * from the `bonding` ubus object (bondingd).  The throughput graph is computed here from the
 * polled rx_bytes/tx_bytes counters, one point per poll, as luci-mod-status's bandwidth view
 * does: no chart library, plain SVG polylines.  Each part of the page is a module under
 * bonding/: messages, links, graph (with rates), servers, details.
 */

/* seconds between two status polls: bondingd refreshes its status and counters every second,
 * and a link it declares down is red here within that second and the call's time */
const POLL_INTERVAL = 1;
const GRAPH_WINDOW = 300;	/* seconds of history drawn in the graphs */

function section(title, el) {
	return E('div', { 'class': 'cbi-section' }, [ E('h3', {}, [ title ]), el ]);
}

return view.extend({
	load: function() {
		return this.fetchStatus();
	},

	/* Never rejects: a daemon that is down is a state to show, not an error to throw. */
	fetchStatus: function() {
		return bondingRpc.status().then(function(st) {
			if (fmt.isObject(st) && fmt.isObject(st.paths))
				return { status: st, error: null };
			return { status: null, error: _('bondingd gave an empty reply') };
		}, function(err) {
			return { status: null, error: fmt.errorText(err) };
		});
	},

	render: function(res) {
		this.rates = new rates.RateTracker(GRAPH_WINDOW);
		this.writable = (L.hasViewPermission() === true);

		this.messagesEl = E('div', { 'id': 'bonding-messages' });
		this.linksEl = E('div', { 'id': 'bonding-links' });
		this.graphsEl = E('div', { 'id': 'bonding-graphs' });
		this.serverEl = E('div', { 'id': 'bonding-server' });

		const node = E('div', { 'id': 'bonding-status' }, [
			E('h2', {}, [ _('Bonding status') ]),
			E('div', { 'class': 'cbi-map-descr' }, [
				(POLL_INTERVAL == 1) ? _('What every link is doing, and why, refreshed every second.')
					: _('What every link is doing, and why, refreshed every %d seconds.').format(POLL_INTERVAL)
			]),
			this.messagesEl,
			section(_('Links'), this.linksEl),
			section(_('Throughput'), this.graphsEl),
			section(_('Server and proxy'), this.serverEl)
		]);

		if (this.writable) {
			this.reloadEl = E('button', {
				'class': 'cbi-button cbi-button-apply',
				'id': 'bonding-reload',
				'title': _('Make bondingd read /etc/config/bonding again'),
				'click': ui.createHandlerFn(this, 'handleReload')
			}, [ _('Reload configuration') ]);
			node.appendChild(E('div', { 'class': 'right' }, [ this.reloadEl ]));
		}

		this.update(res);
		poll.add(L.bind(this.poll, this), POLL_INTERVAL);

		return node;
	},

	poll: function() {
		return this.fetchStatus().then(L.bind(this.update, this));
	},

	update: function(res) {
		const st = res ? res.status : null;

		/* only a running bondingd can reload: the button waits for it */
		if (this.reloadEl) {
			this.reloadEl.disabled = !st;
			this.reloadEl.title = st ? _('Make bondingd read /etc/config/bonding again')
				: _('bondingd is not running: start it to reload its configuration');
		}

		if (!st) {
			this.rates = new rates.RateTracker(GRAPH_WINDOW);
			dom.content(this.messagesEl, messages.down(res && res.error));
			dom.content(this.linksEl, E('em', {}, [ _('No link state without the daemon.') ]));
			dom.content(this.graphsEl, E('em', {}, [ _('No throughput without the daemon.') ]));
			dom.content(this.serverEl, E('em', {}, [ _('No server and proxy state without the daemon.') ]));
			return;
		}

		this.rates.update(st, Date.now());
		dom.content(this.messagesEl, messages.render(st));
		dom.content(this.linksEl, links.render(this, st, this.rates, this.writable));
		dom.content(this.graphsEl, graph.render(this.rates.samples, { window: GRAPH_WINDOW, interval: POLL_INTERVAL }));
		dom.content(this.serverEl, servers.render(st));
	},

	notifyError: function(what, err) {
		ui.addNotification(null, E('p', {}, [
			_('%s failed: %s').format(what, fmt.errorText(err))
		]), 'error');
	},

	/* Run an action, then refresh the page; a failure becomes a notification, never a throw. */
	act: function(what, promise) {
		return promise.then(L.bind(function() {
			return this.poll();
		}, this)).catch(L.bind(function(err) {
			this.notifyError(what, err);
		}, this));
	},

	/* Probe now, then say what the round found, target by target. */
	handleProbe: function(name) {
		return this.act(_('Probing %s').format(name), bondingRpc.probe(name).then(function(p) {
			ui.addNotification(null, details.probeResult(name, p), 'info', 'bonding-probe-result');
		}));
	},

	handleBackup: function(name, backup) {
		return this.act(_('Changing the backup flag of %s').format(name), bondingRpc.setPath(name, backup));
	},

	handleDetails: function(name, ev) {
		if (ev && ev.preventDefault)
			ev.preventDefault();

		return bondingRpc.path(name).then(function(p) {
			details.show(name, p);
		}).catch(L.bind(function(err) {
			this.notifyError(_('Reading link %s').format(name), err);
		}, this));
	},

	handleReload: function() {
		return bondingRpc.reload().then(L.bind(function(res) {
			const problems = Array.isArray(res.problems) ? res.problems : [];
			ui.addNotification(null, [
				E('p', {}, [ res.ok ? _('bondingd reloaded its configuration.') : _('bondingd kept its last good configuration.') ]),
				problems.length ? E('ul', {}, problems.map(p => E('li', {}, [ String(p) ]))) : ''
			], res.ok ? 'info' : 'warning');
			return this.poll();
		}, this)).catch(L.bind(function(err) {
			this.notifyError(_('Reloading'), err);
		}, this));
	},

	handleSaveApply: null,
	handleSave: null,
	handleReset: null
});
