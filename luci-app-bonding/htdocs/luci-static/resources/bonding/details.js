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

function targetRow(t) {
	return E('tr', { 'class': 'tr' }, [
		cell(String(t.target)),
		cell(String(t.sent)),
		cell(String(t.received)),
		cell(fmt.formatPct(t.loss_pct)),
		cell(fmt.formatMs(t.rtt_ms))
	]);
}

return baseclass.extend({
	/* Show the modal for link `name` from the reply `p` of bonding.path. */
	show: function(name, p) {
		const targets = Array.isArray(p.targets) ? p.targets : [];
		const windowText = Array.isArray(p.window)
			? p.window.map(w => (w == 'ok') ? '✓' : '✗').join('') : '–';

		ui.showModal(_('Link %s').format(name), [
			E('p', {}, [ _('Last rounds (oldest first): %s').format(windowText) ]),
			E('table', { 'class': 'table' }, [
				E('tr', { 'class': 'tr table-titles' }, [
					th(_('Target')), th(_('Sent')), th(_('Received')), th(_('Loss')), th(_('RTT'))
				])
			].concat(targets.map(targetRow))),
			E('div', { 'class': 'right' }, [
				E('button', { 'class': 'cbi-button', 'click': ui.hideModal }, [ _('Dismiss') ])
			])
		]);
	}
});
