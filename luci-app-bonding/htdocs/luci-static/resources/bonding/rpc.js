'use strict';
'require baseclass';
'require rpc';

/*
 * The `bonding` ubus object (bondingd) as the views call it: one declaration per method, shared
 * by the status page, the configuration page and the Status → Overview include.  Each one is
 * granted in root/usr/share/rpcd/acl.d/luci-app-bonding.json (status and path read, the rest
 * write).  set_key is how a server key is stored: never through uci (rpcd lets no LuCI login
 * read bonding_secrets), and bondingd never answers with a key.
 */

/* Resolves with {} rather than rejects on a ubus error: the callers show the daemon as down. */
const callStatus = rpc.declare({
	object: 'bonding',
	method: 'status',
	expect: { '': {} }
});

const callPath = rpc.declare({
	object: 'bonding',
	method: 'path',
	params: [ 'name' ],
	expect: { '': {} },
	reject: true
});

const callSetPath = rpc.declare({
	object: 'bonding',
	method: 'set_path',
	params: [ 'name', 'backup' ],
	reject: true
});

const callProbe = rpc.declare({
	object: 'bonding',
	method: 'probe',
	params: [ 'name' ],
	reject: true
});

const callReload = rpc.declare({
	object: 'bonding',
	method: 'reload',
	expect: { '': {} },
	reject: true
});

const callSetKey = rpc.declare({
	object: 'bonding',
	method: 'set_key',
	params: [ 'server', 'key', 'cipher' ],
	reject: true
});

return baseclass.extend({
	status: callStatus,
	path: callPath,
	setPath: callSetPath,
	probe: callProbe,
	reload: callReload,
	setKey: callSetKey
});
