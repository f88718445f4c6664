'use strict';
'require baseclass';
'require ui';
'require bonding.format as fmt';

/*
 * The link-details dialog of the status page: the probe results bondingd's `path` method gives
 * for one link, the last rounds and every probe target's counts.
 */

function th(title) {
	return E('th', { 'class': 'th' }, [ title ]);
}

function cell(content) {
	return E('td', { 'class': 'td' }, [ content ]);
}

/* Loss over the target's whole count (bondingd sends sent and received, not a percentage). */
function lossPct(t) {
	return (typeof(t.sent) == 'number' && t.sent > 0 && typeof(t.received) == 'number')
		? 100 * (t.sent - t.received) / t.sent : null;
}

function targetRow(t) {
	return E('tr', { 'class': 'tr' }, [
		cell(String(t.address)),
		cell(String(t.sent)),
		cell(String(t.received)),
		cell(fmt.formatPct(lossPct(t))),
		cell(fmt.formatMs(t.last_rtt_ms)),
		cell((typeof(t.last_reply_s) == 'number') ? _('%.1f s ago').format(t.last_reply_s) : '–'),
		cell(t.error ? String(t.error) : '')
	]);
}

function windowText(w) {
	return Array.isArray(w) ? w.map(x => (x == 'ok') ? '✓' : '✗').join('') : '–';
}

/* One line per address family: its state, rounds and last rounds. */
function familyLine(name, f) {
	return E('p', {}, [
		_('%s: %s, %d rounds, last rounds (oldest first): %s').format(
			(name == 'ipv6') ? 'IPv6' : 'IPv4', fmt.stateLabel(f.state), f.rounds || 0,
			windowText(f.window)) + (f.reason ? ' (%s)'.format(f.reason) : '')
	]);
}

/* One target of a probe's answer in words: its last RTT, or why it did not answer. */
function targetWords(t) {
	if (t.error)
		return _('%s: no answer (%s)').format(String(t.address), String(t.error));
	if (fmt.isNum(t.last_rtt_ms))
		return _('%s: %s').format(String(t.address), fmt.formatMs(t.last_rtt_ms));
	return _('%s: no answer yet').format(String(t.address));
}

return baseclass.extend({
	/* What "Probe now" found on link `name` (bonding.probe answers as bonding.path does). */
	probeResult: function(name, p) {
		p = fmt.isObject(p) ? p : {};
		const targets = Array.isArray(p.targets) ? p.targets : [];
		return E('div', {}, [
			E('p', {}, [
				E('strong', {}, [ _('Probe of %s: %s').format(name, fmt.stateLabel(p.state)) ]),
				p.reason ? ' (%s)'.format(p.reason) : ''
			]),
			targets.length
				? E('ul', {}, targets.map(t => E('li', {}, [ targetWords(t) ])))
				: E('p', {}, [ _('No probe target answered or was probed.') ])
		]);
	},

	/* Show the modal for link `name` from the reply `p` of bonding.path. */
	show: function(name, p) {
		const targets = Array.isArray(p.targets) ? p.targets : [];
		const families = fmt.isObject(p.families) ? p.families : {};
		const lines = Object.keys(families).sort().map(k => familyLine(k, families[k]));

		ui.showModal(_('Link %s').format(name), [
			E('p', {}, [ _('Last rounds (oldest first): %s').format(windowText(p.window)) ]),
			E('p', {}, [ _('Probe timeout: %s').format(fmt.formatMs(p.probe_timeout_ms)) ])
		].concat(lines, [
			E('table', { 'class': 'table' }, [
				E('tr', { 'class': 'tr table-titles' }, [
					th(_('Target')), th(_('Sent')), th(_('Received')), th(_('Loss')),
					th(_('Last RTT')), th(_('Last reply')), th(_('Error'))
				])
			].concat(targets.map(targetRow))),
			E('div', { 'class': 'right' }, [
				E('button', { 'class': 'cbi-button', 'click': ui.hideModal }, [ _('Dismiss') ])
			])
		]));
	}
});
