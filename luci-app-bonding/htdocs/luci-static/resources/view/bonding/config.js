'use strict';
'require view';
'require form';
'require ui';
'require tools.widgets as widgets';
'require bonding.rpc as brpc';
'require bonding.validators as validators';

/*
 * Services → Bonding → Configuration: /etc/config/bonding, validated here with LuCI's datatypes
 * against the same ranges bondingd checks (python/bonding/config/).  Save & Apply commits the
 * file and procd's reload trigger makes bondingd reload it.
 *
 * Server keys live in /etc/config/bonding_secrets, which no LuCI login reaches through uci:
 * rpcd refuses reading it to everyone (so LuCI could not re-read it after staging a change),
 * and the ACL grants no writing either.  A key is handed to bondingd's `set_key` method (the
 * write ACL grants it), which stores it and never gives it back.  The key field is therefore
 * write-only: empty means "keep the stored key", anything typed replaces it, and it is stored
 * when the server dialog is saved, not staged for Save & Apply.
 */

/*
 * A save writes only what the user changed.  LuCI's own options delete a value equal to their
 * default (and a Flag whose rmempty is false is written on every save): a first save wrote
 * globals.enabled and dropped usb.auto_dhcp, usb.modem_mbim and globals.log_level, all as
 * shipped.  Here an option whose form value is what the form showed (the stored value, else
 * the default) leaves the config alone; any other goes through LuCI's own parse.
 */
function writeOnlyChanges(m) {
	for (const s of m.children)
		for (const o of s.children) {
			const parse = o.parse;
			o.parse = function(section_id) {
				if (this.isActive(section_id) && this.isValid(section_id)) {
					const stored = this.cfgvalue(section_id);
					const shown = (stored != null && stored !== '') ? stored : this.default;
					if (shown != null && !Array.isArray(shown) && this.formvalue(section_id) == shown)
						return Promise.resolve();
				}
				return parse.call(this, section_id);
			};
		}
}

/* An option's cell in a grid shows bondingd's default when the option is unset, not "none". */
function showDefault(o, dflt) {
	o.textvalue = function(section_id) {
		const v = this.cfgvalue(section_id);
		return (v != null && v !== '') ? String(v) : _('%s (default)').format(dflt);
	};
}

/*
 * Integer options of a tab and their ranges, the same bounds bondingd enforces: rows of
 * [ option, title, description, min, max, default ].  The default is only a placeholder: unset
 * means bondingd's default, never written.
 */
function intOptions(s, tab, rows) {
	const made = {};
	for (const [ name, title, description, min, max, dflt ] of rows) {
		const o = s.taboption(tab, form.Value, name, title, description);
		o.datatype = 'and(uinteger,range(%d,%d))'.format(min, max);
		o.placeholder = dflt;
		made[name] = o;
	}
	return made;
}

function generalTab(s) {
	let o = s.taboption('general', form.Flag, 'enabled', _('Enable bonding'),
		_('When off, bondingd keeps running but neither probes links nor bonds traffic.'));
	o.default = o.enabled;
	o.rmempty = false;

	o = s.taboption('general', form.ListValue, 'log_level', _('Log level'),
		_('What bondingd writes to the system log (logread -e bondingd).'));
	o.value('debug', _('Debug'));
	o.value('info', _('Info'));
	o.value('notice', _('Notice'));
	o.value('warning', _('Warning'));
	o.value('error', _('Error'));
	o.default = 'info';

	o = s.taboption('general', form.ListValue, 'proxy', _('Proxy backend'),
		_('The transparent proxy that carries LAN traffic over Multipath TCP to the server. Automatic takes sing-box, the proxy bonding is tested with, once it is installed (also later, by itself). Xray runs only when chosen here: no test of bonding runs it.'));
	o.value('auto', _('Automatic (sing-box)'));
	o.value('sing-box', 'sing-box');
	o.value('xray', _('Xray (untested)'));
	o.value('shadowsocks-libev', 'shadowsocks-libev');
	o.value('none', _('None: bond the router\'s own traffic only'));
	o.default = 'auto';
}

function probingTab(s) {
	intOptions(s, 'probing', [
		[ 'probe_interval_ms', _('Probe interval (ms)'),
		  _('Time between two probe rounds of a link. Shorter notices a dead link sooner and sends more probes.'),
		  20, 60000, '150' ],
		[ 'probe_timeout_min_ms', _('Shortest reply timeout (ms)'),
		  _('The reply timeout follows each link\'s measured RTT, but never goes below this.'),
		  10, 60000, '250' ],
		[ 'probe_timeout_ms', _('Longest reply timeout (ms)'),
		  _('A reply later than this counts as lost, however slow the link is.'),
		  10, 60000, '1000' ],
		[ 'down_count', _('Failed rounds to go down'),
		  _('A link is declared down when at least this many of the last rounds (see the next field) failed.'),
		  1, 100, '3' ],
		[ 'down_window', _('Rounds looked at for going down'),
		  _('How many of the latest rounds are counted for the previous field. Must not be smaller than it.'),
		  1, 100, '5' ],
		[ 'up_count', _('Good rounds to come back'),
		  _('A down link is declared up again after this many good rounds in a row, so a flapping link does not flap the bond.'),
		  1, 100, '5' ]
	]);

	const o = s.taboption('probing', form.DynamicList, 'probe_target', _('Probe targets'),
		_('IPv4 and global IPv6 addresses probed through every link (like mwan3\'s track_ip), each over the link\'s address of its family. Empty: the servers\' addresses. A link can override this list.'));
	o.datatype = 'or(ip4addr(1),ip6addr(1))';
	o.placeholder = '1.1.1.1';
}

function thresholdsTab(s) {
	intOptions(s, 'thresholds', [
		[ 'loss_window', _('Loss window (rounds)'),
		  _('Packet loss is measured over this many latest rounds.'),
		  2, 1000, '20' ],
		[ 'degraded_loss_pct', _('Degraded at loss (%)'),
		  _('A link whose loss over the loss window reaches this percentage is degraded.'),
		  1, 100, '20' ]
	]);

	const o = s.taboption('thresholds', form.Value, 'degraded_rtt_factor', _('Degraded at RTT factor'),
		_('A link is degraded when its smoothed RTT is above this factor times the best link\'s RTT and also above the best link\'s RTT plus the margin below.'));
	o.datatype = 'and(ufloat,range(1,100))';
	o.placeholder = '3.0';

	intOptions(s, 'thresholds', [
		[ 'degraded_rtt_ms', _('Degraded RTT margin (ms)'),
		  _('Keeps links with small RTTs from being called degraded: 3 ms against 1 ms is three times worse but does not matter.'),
		  0, 60000, '150' ]
	]);
}

function dataplaneTab(s) {
	let o = s.taboption('dataplane', form.DynamicList, 'lan_device', _('LAN devices'),
		_('Traffic routed from these devices goes through the proxy.'));
	o.datatype = 'netdevname';
	o.placeholder = 'br-lan';

	o = s.taboption('dataplane', form.Value, 'tproxy_port', _('Proxy port'),
		_('Local port of the transparent proxy.'));
	o.datatype = 'and(port,range(1,65535))';
	o.placeholder = '1100';

	o = s.taboption('dataplane', form.Value, 'tproxy_mark', _('Firewall mark'),
		_('Mark (and mask) of the packets steered to the proxy, like 0xb0. Change it only if it collides with another package\'s marks.'));
	o.validate = validators.mark;
	o.placeholder = '0xb0';

	intOptions(s, 'dataplane', [
		[ 'tproxy_table', _('Proxy routing table'),
		  _('Routing table that delivers marked packets to the proxy. Not 253–255, the routing table or a link table.'),
		  1, 2147483647, '199' ]
	]);

	o = s.taboption('dataplane', form.DynamicList, 'bypass', _('Never proxied'),
		_('Destinations that always go out directly. When given, this list replaces the built-in list of local, private and reserved ranges, so name those too.'));
	o.datatype = 'or(cidr4,ip4addr(1))';
	o.validate = validators.network;
	o.placeholder = '10.0.0.0/8';

	o = s.taboption('dataplane', form.Value, 'proxy_user', _('Proxy user'),
		_('The proxy runs as this user, with network capabilities only. The package creates \'bonding\'; \'root\' gives the proxy every privilege.'));
	o.validate = function(section_id, value) {
		return (value === '' || /^[a-z_][a-z0-9_-]{0,31}$/.test(value)) ? true
			: _('A user name: a lower-case letter or \'_\', then letters, digits, \'_\' or \'-\'');
	};
	o.placeholder = 'bonding';

	o = s.taboption('dataplane', form.Flag, 'proxy_udp', _('Proxy UDP'),
		_('Send UDP (DNS, calls, games) through the proxy as well as TCP.'));
	o.default = o.enabled;

	o = s.taboption('dataplane', form.Flag, 'ipv6', _('IPv6'),
		_('Bond the links\' IPv6 too (endpoints, probes, routing), and send the LAN\'s IPv6 through the proxy when the server has an IPv6 address. Off: IPv6 is left as the system routes it.'));
	o.default = o.enabled;

	o = s.taboption('dataplane', form.DynamicList, 'bypass6', _('Never proxied (IPv6)'),
		_('IPv6 destinations that always go out directly. When given, this list replaces the built-in list (link-local, unique local, multicast, documentation, NAT64…), so name those too.'));
	o.datatype = 'or(cidr6,ip6addr(1))';
	o.validate = validators.network6;
	o.placeholder = 'fc00::/7';
}

function failoverTab(s) {
	const o = s.taboption('failover', form.ListValue, 'server_failback', _('After a failover'),
		_('Return: go back to a preferred server once it has answered for the hold time; the connections through the proxy restart then. Stay: keep the server in use until it fails.'));
	o.value('return', _('Return to the preferred server'));
	o.value('stay', _('Stay on the server in use'));
	o.default = 'return';

	const made = intOptions(s, 'failover', [
		[ 'server_hold_s', _('Hold time (s)'),
		  _('How long a preferred server must answer without a break before traffic goes back to it.'),
		  0, 86400, '60' ],
		[ 'server_probe_interval_ms', _('Server probe interval (ms)'),
		  _('Time between two probe rounds of the servers.'),
		  100, 60000, '500' ],
		[ 'server_down_count', _('Failed rounds to fail over'),
		  _('The server in use is declared down after this many rounds in a row without an answer through any link.'),
		  1, 100, '3' ],
		[ 'server_up_count', _('Good rounds to come back'),
		  _('A server that stopped answering counts as answering again after this many good rounds in a row (more when it keeps failing).'),
		  1, 100, '3' ]
	]);
	made.server_hold_s.depends('server_failback', 'return');
}

function advancedTab(s) {
	intOptions(s, 'advanced', [
		[ 'mptcp_subflows', _('MPTCP subflows'),
		  _('Kernel limit of subflows per MPTCP connection; one per link is used.'),
		  0, 8, '8' ],
		[ 'mptcp_add_addr_accepted', _('Accepted ADD_ADDR'),
		  _('How many addresses announced by the server the kernel accepts. 0 is right for a server with one address.'),
		  0, 8, '0' ],
		[ 'route_table', _('Routing table'),
		  _('Holds the default route and the routes to the servers. Must not lie inside the link tables.'),
		  1, 2147483647, '200' ],
		[ 'path_table_base', _('First link table'),
		  _('Link number i gets routing table first + i, so each subflow leaves by its own link. The 32 tables must not include 253–255.'),
		  1, 2147483647, '210' ],
		[ 'rule_priority', _('Rule priority'),
		  _('bondingd\'s ip rules use priorities from this one to this one + 100.'),
		  1, 32000, '1000' ]
	]);

	let o = s.taboption('advanced', form.Value, 'congestion_control', _('TCP congestion control'),
		_('Congestion control of the bonded subflows, set on bondingd\'s routes. The kernel module must be installed (kmod-tcp-bbr for bbr).'));
	o.value('bbr', 'BBR');
	o.value('cubic', 'CUBIC');
	o.placeholder = 'bbr';
	o.validate = validators.congestion;

	o = s.taboption('advanced', form.Flag, 'manage_default_route', _('Manage the default route'),
		_('Keep the router\'s own default route on a working link.'));
	o.default = o.enabled;

	o = s.taboption('advanced', form.Value, 'dnsmasq_nftset', _('dnsmasq nftset file'),
		_('Where bondingd writes the nftset lines that let rules match destination domains (a file in dnsmasq\'s conf-dir).'));
	o.placeholder = '/tmp/dnsmasq.d/bonding-rules.conf';
	o.validate = function(section_id, value) {
		return (value == null || value === '' || /^\/[^\s'"]+$/.test(value)) ? true
			: _('An absolute file path, e.g. /tmp/dnsmasq.d/bonding-rules.conf');
	};
}

/* --- global settings: one tab per concern ---------------------------------------------------- */
function globalsSection(m) {
	const s = m.section(form.NamedSection, 'globals', 'globals', _('Global settings'));
	s.addremove = false;
	s.tab('general', _('General'));
	s.tab('probing', _('Link probing'),
		_('Every link is probed on its own: each round sends one echo to every probe target through that link, and a round is good when any target answers.'));
	s.tab('thresholds', _('Degraded links'),
		_('A degraded link still works but is much worse than the best link; it is kept as a backup until it recovers.'));
	s.tab('dataplane', _('Transparent proxy'));
	s.tab('failover', _('Server failover'),
		_('Every enabled server is probed through every working link (a TCP connection to its port). When the server in use stops answering through all of them, new connections go to the next server by priority.'));
	s.tab('advanced', _('Advanced'));

	generalTab(s);
	probingTab(s);
	thresholdsTab(s);
	dataplaneTab(s);
	failoverTab(s);
	advancedTab(s);
}

/* The write-only key of a server: stored through bondingd (see the top of this file). */
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

/* --- servers ------------------------------------------------------------------------------- */
function serversSection(m, writable) {
	const s = m.section(form.GridSection, 'server', _('Aggregation servers'),
		_('The server (a VPS) that merges the links. Create its entry with "bonding-server add-client" on the server, which prints these values. With several, the preferred one that answers is used and the others take over when it fails (see Server failover above).'));
	s.addremove = true;
	s.anonymous = false;
	s.nodescriptions = true;
	s.addbtntitle = _('Add server');

	let o = s.option(form.Flag, 'enabled', _('Enabled'));
	o.default = o.enabled;
	o.editable = true;

	o = s.option(form.Value, 'address', _('Address'), _('IP address or host name of the server.'));
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
	showDefault(o, '65101');

	o = s.option(form.Value, 'priority', _('Priority'),
		_('Lower is preferred; servers of equal priority in the order of this list. The preferred server that answers carries the traffic.'));
	o.datatype = 'and(uinteger,range(0,1000))';
	o.placeholder = '10';
	showDefault(o, '10');

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

/*
 * The Interface cell of a link: netifd's badge for an interface netifd knows, the name of one
 * it does not (yet), and the device of a link configured by device (not "unspecified").
 */
function interfaceText(o) {
	const badge = o.textvalue;
	o.textvalue = function(section_id) {
		const iface = this.cfgvalue(section_id);
		const device = this.map.data.get(this.map.config, section_id, 'device');
		if (iface == null || iface === '')
			return device ? _('device %s').format(device) : E('em', {}, [ _('unspecified') ]);
		if ((this.networks || []).some(n => n.getName() == iface))
			return badge.call(this, section_id);
		return device ? '%s (%s)'.format(iface, device) : String(iface);
	};
}

/* --- links --------------------------------------------------------------------------------- */
function pathsSection(m) {
	const s = m.section(form.GridSection, 'path', _('Links'),
		_('One entry per internet link. Without any, bondingd bonds the WAN interfaces of netifd.'));
	s.addremove = true;
	s.anonymous = false;
	s.nodescriptions = true;
	s.addbtntitle = _('Add link');

	let o = s.option(form.Flag, 'enabled', _('Enabled'));
	o.default = o.enabled;
	o.editable = true;

	o = s.option(widgets.NetworkSelect, 'interface', _('Interface'),
		_('The netifd interface of this link (wan, wwan, …).'));
	o.nocreate = true;
	o.optional = true;
	o.datatype = 'uciname';
	o.validate = function(section_id, value) {
		const device = this.section.formvalue(section_id, 'device');
		if ((value == null || value === '') && (device == null || device === ''))
			return _('Expecting: %s').format(_('an interface, or a device below'));
		return true;
	};
	interfaceText(o);

	o = s.option(form.Value, 'device', _('Device'),
		_('Only where the link has no netifd interface: the kernel device, like eth1.'));
	o.datatype = 'netdevname';
	o.optional = true;
	o.modalonly = true;

	o = s.option(form.Value, 'gateway', _('Gateway'),
		_('Next hop of the link. Empty: learnt from netifd or the main routing table.'));
	o.datatype = 'ip4addr(1)';
	o.optional = true;
	o.modalonly = true;

	o = s.option(form.Value, 'gateway6', _('IPv6 gateway'),
		_('IPv6 next hop of the link, often link-local (fe80::1). Empty: learnt from the main routing table (router advertisements).'));
	o.datatype = 'ip6addr(1)';
	o.optional = true;
	o.modalonly = true;

	o = s.option(form.Flag, 'backup', _('Forced backup'),
		_('Carries traffic only when no other link is up: for metered or expensive links.'));
	o.default = o.disabled;
	o.editable = true;

	o = s.option(form.Value, 'download_kbit', _('Download (kbit/s)'),
		_('The link\'s download rate, if known. Empty: measured.'));
	o.datatype = 'and(uinteger,range(1,100000000))';
	o.optional = true;

	o = s.option(form.Value, 'upload_kbit', _('Upload (kbit/s)'),
		_('The link\'s upload rate, if known. Empty: measured.'));
	o.datatype = 'and(uinteger,range(1,100000000))';
	o.optional = true;

	o = s.option(form.Value, 'congestion_control', _('TCP congestion control'),
		_('For the subflows over this link. Empty: the global setting. cubic suits clean wired links, bbr lossy radio links.'));
	o.value('bbr', 'BBR');
	o.value('cubic', 'CUBIC');
	o.optional = true;
	o.modalonly = true;
	o.validate = validators.congestion;

	o = s.option(form.DynamicList, 'probe_target', _('Probe targets'),
		_('IPv4 and global IPv6 addresses probed through this link. Empty: the global probe targets (per family).'));
	o.datatype = 'or(ip4addr(1),ip6addr(1))';
	o.modalonly = true;
}

/* --- USB ----------------------------------------------------------------------------------- */
function usbSection(m) {
	const s = m.section(form.NamedSection, 'usb', 'usb', _('USB links and modems'));
	s.addremove = false;

	let o = s.option(form.Flag, 'auto_dhcp', _('USB links join by themselves'),
		_('A new USB network device (phone tethering, a modem in network mode) becomes a DHCP WAN link in the wan zone.'));
	o.default = o.enabled;

	o = s.option(form.Flag, 'modem_mbim', _('Switch modems to MBIM'),
		_('Quectel modems found in another mode are switched to MBIM.'));
	o.default = o.enabled;

	o = s.option(form.Value, 'metric_base', _('First metric'),
		_('USB links get route metrics from this value to this value + 15, the first free one each.'));
	o.datatype = 'and(uinteger,range(1,1000))';
	o.placeholder = '40';

	o = s.option(form.Value, 'apn', _('Modem APN'),
		_('Access point name for modems brought up over MBIM or QMI (ask the mobile operator, e.g. "internet"). Tethered phones and DHCP dongles need none.'));
	o.validate = validators.apn;
}

return view.extend({
	render: function() {
		/* LuCI marks the footer's Save & Apply disabled on a read-only page, but its click
		 * handler still runs: a read-only page gets no footer at all */
		if (L.hasViewPermission() !== true)
			this.handleSaveApply = this.handleSave = this.handleReset = null;

		const m = new form.Map('bonding', _('Bonding configuration'),
			_('Links, aggregation servers and the settings of bondingd. Save & Apply makes bondingd reload its configuration; live connections are kept.'));
		m.tabbed = true;

		globalsSection(m);
		serversSection(m, L.hasViewPermission() === true);
		pathsSection(m);
		usbSection(m);
		writeOnlyChanges(m);

		return m.render();
	}
});
