'use strict';
'require baseclass';
'require form';
'require ui';
'require bonding.rpc as brpc';
'require bonding.validators as validators';
'require bonding.config.options as options';

/* The configuration page's aggregation servers (sections server), with their write-only keys. */

/* The write-only key of a server: stored through bondingd (see the top of view/bonding/config.js). */
function keyOption(s) {
	const o = s.option(form.Value, 'key', _('Key'),
		_('Stored in /etc/config/bonding_secrets by bondingd when this dialog is saved (not staged for Save & Apply), and never shown again. Leave empty to keep the stored key; type a key to replace it.'));
	o.keystore = 'bondingd';
	o.password = true;
	o.modalonly = true;
	o.optional = true;
	o.placeholder = _('unchanged');
	o.load = function(section_id) {
		return null;
	};
	o.validate = function(section_id, value) {
		return validators.key(value, this.section.formvalue(section_id, 'cipher'));
	};
	/* nothing goes to uci: the dialog's save hands the key to bondingd (storeKeyOnSave) */
	o.write = function(section_id, value) {};
	o.remove = function(section_id) {};
}

/*
 * The server dialog (a form.Map of its own): once everything in it is valid, and before its
 * changes are staged, a typed key goes to bondingd.  A refusal is shown, and rejects the save,
 * so the dialog stays open with nothing staged.
 */
function storeKeyOnSave(modalSection, section_id) {
	const m = modalSection.map;
	const save = m.save;
	m.save = function(cb, silent) {
		return save.call(this, function() {
			return Promise.resolve(cb ? cb.apply(this, arguments) : null)
				.then(() => sendKey(modalSection, section_id));
		}, silent);
	};
}

function sendKey(ms, section_id) {
	const key = ms.formvalue(section_id, 'key');
	if (key == null || key === '')
		return null;
	const cipher = ms.formvalue(section_id, 'cipher');
	return brpc.setKey(section_id, key, cipher || undefined).catch(e => {
		ui.addNotification(null, E('p', [
			_('The key of server %s was not stored, and nothing of this dialog was saved: %s').format(section_id, e.message)
		]), 'danger');
		throw e;
	});
}

function serversSection(m, writable) {
	const s = options.gridSection(m, 'server', _('Aggregation servers'),
		_('The server (a VPS) that merges the links. Create its entry with "bonding-server add-client" on the server, which prints these values. With several, the preferred one that answers is used and the others take over when it fails (see Server failover above).'),
		_('Add server'));

	let o = s.option(form.Value, 'address', _('Address'), _('IP address or host name of the server.'));
	o.datatype = 'host';
	o.rmempty = false;

	o = s.option(form.Value, 'address6', _('IPv6 address'),
		_('The server\'s IPv6 address, if it has one: the LAN\'s IPv6 then goes through it too, and the links\' IPv6 carries subflows to it.'));
	o.datatype = 'ip6addr(1)';
	o.optional = true;
	o.modalonly = true;

	o = s.option(form.Value, 'port', _('Port'));
	o.datatype = 'and(port,range(1,65535))';
	o.placeholder = '65101';
	options.showDefault(o, '65101');

	o = s.option(form.Value, 'priority', _('Priority'),
		_('Lower is preferred; servers of equal priority in the order of this list. The preferred server that answers carries the traffic.'));
	o.datatype = 'and(uinteger,range(0,1000))';
	o.placeholder = '10';
	options.showDefault(o, '10');

	o = s.option(form.ListValue, 'protocol', _('Protocol'));
	o.value('shadowsocks', 'Shadowsocks');
	o.value('vless', 'VLESS');
	o.default = 'shadowsocks';

	o = s.option(form.ListValue, 'cipher', _('Cipher'),
		_('The 2022-blake3 ciphers need Xray or sing-box; shadowsocks-libev knows only the others.'));
	validators.CIPHERS.forEach(c => o.value(c));
	o.default = 'chacha20-ietf-poly1305';
	o.modalonly = true;

	o = s.option(form.Flag, 'udp_over_tcp', _('UDP inside the bonded connection'),
		_('The server takes UDP inside the bonded connection (bonding-server with sing-box does, and says so): calls and games go on when a link dies. Used by the sing-box proxy.'));
	o.default = o.disabled;
	o.modalonly = true;

	if (writable) {
		keyOption(s);
		s.addModalOptions = storeKeyOnSave;
	}
}

return baseclass.extend({
	section: serversSection
});
