'use strict';
'require baseclass';
'require form';
'require bonding.validators as validators';
'require bonding.config.options as options';

/* The configuration page's global settings (section globals): one tab per concern. */

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
	options.intOptions(s, 'probing', [
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
		  1, 100, '5' ],
		[ 'standby_probe_interval_ms', _('Standby probe interval (ms)'),
		  _('Time between two probe rounds of a backup link that stands by: it costs almost no data, and the normal interval comes back as soon as the link may be needed.'),
		  1000, 3600000, '60000' ]
	]);

	const o = s.taboption('probing', form.DynamicList, 'probe_target', _('Probe targets'),
		_('IPv4 and global IPv6 addresses probed through every link (like mwan3\'s track_ip), each over the link\'s address of its family. Empty: the servers\' addresses. A link can override this list.'));
	o.datatype = 'or(ip4addr(1),ip6addr(1))';
	o.placeholder = '1.1.1.1';
}

function thresholdsTab(s) {
	options.intOptions(s, 'thresholds', [
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

	options.intOptions(s, 'thresholds', [
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

	options.intOptions(s, 'dataplane', [
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

	const made = options.intOptions(s, 'failover', [
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

/* as bonding.config.realtime's dscp, port and device */
const DSCP = [ 'ef', 'cs4', 'cs5', 'af41', 'af42', 'af43', 'cs3', 'cs6', 'af31', 'af32', 'af33', 'va' ];

function realtimeValid(kind, value) {
	const v = String(value == null ? '' : value).trim().toLowerCase();
	if (v === '')
		return true;
	if (kind == 'dscp')
		return (DSCP.indexOf(v) >= 0 || (/^\d{1,2}$/.test(v) && +v <= 63)) ? true
			: _('A DSCP class (%s) or 0–63').format(DSCP.join(', '));
	if (kind == 'port') {
		const m = v.match(/^(\d{1,5})(?:-(\d{1,5}))?$/);
		const lo = m ? +m[1] : 0, hi = m ? (m[2] ? +m[2] : lo) : 0;
		return (m && lo >= 1 && lo <= hi && hi <= 65535) ? true
			: _('A UDP port or a range low-high, e.g. 5060 or 10000-20000');
	}
	const ip = v.match(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/);
	const ipOk = ip && ip.slice(1, 5).every(function(x) { return +x <= 255; })
		&& (ip[5] == null || +ip[5] <= 32) && validators.network(null, v) === true;
	return (/^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$/.test(v) || ipOk) ? true
		: _('A MAC (aa:bb:cc:dd:ee:ff) or IPv4 address (192.168.1.20)');
}

function realtimeTab(s) {
	let o = s.taboption('realtime', form.Flag, 'realtime', _('Steer realtime traffic'),
		_('Voice, video calls and games (IPv4 UDP) leave natively by the live link with the lowest RTT, never inside the bonded TCP connection, and move when that link dies.'));
	o.default = o.disabled;

	for (const [ name, title, description, kind, placeholder ] of [
		[ 'realtime_dscp', _('DSCP classes'), _('Empty: ef cs4 cs5 af41 af42 af43.'), 'dscp', 'ef' ],
		[ 'realtime_port', _('UDP ports'), _('Either end. Empty: SIP, STUN/TURN, Zoom, Google Meet, the RTP ranges and common game ports (see the README).'), 'port', '5060-5061' ],
		[ 'realtime_device', _('Devices'), _('All UDP of these LAN devices (MAC or IPv4) is realtime.'), 'device', 'aa:bb:cc:dd:ee:ff' ]
	]) {
		o = s.taboption('realtime', form.DynamicList, name, title, description);
		o.placeholder = placeholder;
		o.depends('realtime', '1');
		o.validate = function(section_id, value) { return realtimeValid(kind, value); };
	}

	o = s.taboption('realtime', form.Flag, 'shaping', _('Shape the links'),
		_('Links with a declared download or upload rate are shaped just below it, with strict priority for realtime traffic and the probes, so the queue forms here and not at the ISP.'));
	o.default = o.disabled;

	options.intOptions(s, 'realtime', [
		[ 'shaping_pct', _('Shaped rate (%)'),
		  _('The share of each declared rate the shaper allows.'),
		  50, 100, '95' ]
	]);
}

function advancedTab(s) {
	options.intOptions(s, 'advanced', [
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
		  1, 32000, '1000' ],
		[ 'mptcp_check_interval_s', _('MPTCP check interval (s)'),
		  _('How often an MPTCP connection to the server is opened through each link, to tell an ISP that strips the MPTCP options. 0: never.'),
		  0, 86400, '60' ],
		[ 'mptcp_join_timeout_s', _('MPTCP join timeout (s)'),
		  _('A link that has no subflow of a connection this long, while other links joined it, is taken for an ISP that drops MP_JOIN. 0: not judged.'),
		  0, 86400, '20' ],
		[ 'mptcp_retest_s', _('MPTCP retest after (s)'),
		  _('A link found blocking MP_JOIN is tried again after this long.'),
		  10, 604800, '600' ]
	]);

	let o = s.taboption('advanced', form.Flag, 'mptcp_blocked_native', _('Use MPTCP-blocked links natively'),
		_('A link whose ISP blocks MPTCP gets no bonded traffic; when checked it still carries what needs no MPTCP (pinned rules, the router\'s own traffic), else it is taken out like a dead link.'));
	o.default = o.enabled;

	o = s.taboption('advanced', form.Value, 'congestion_control', _('TCP congestion control'),
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
	s.tab('realtime', _('Realtime and shaping'));
	s.tab('advanced', _('Advanced'));

	generalTab(s);
	probingTab(s);
	thresholdsTab(s);
	dataplaneTab(s);
	failoverTab(s);
	realtimeTab(s);
	advancedTab(s);
}

return baseclass.extend({
	section: globalsSection
});
