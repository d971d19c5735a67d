-- otrd for Neovim: OTR direct messages on Rocket.Chat through the otrd daemon.
--
-- This module owns the plugin's state (sessions as the daemon reports them, the last inviter,
-- the connection) and the user-facing operations behind the :Otr* commands. It talks to otrd
-- through one `otrctl rpc` process (lua/otrd/bridge.lua) and shows conversations in chat
-- buffers (lua/otrd/chat.lua). Needs Neovim 0.7 or later; no other plugin.

local bridge = require('otrd.bridge')
local chat = require('otrd.chat')

local M = {}

local config = {
  -- The otrctl program (a list: program and leading arguments). `rpc` is appended.
  cmd = { 'otrctl' },
  -- The daemon's socket; nil lets otrctl decide ($OTRD_SOCKET, else $XDG_RUNTIME_DIR/otrd/otrd.sock).
  socket = nil,
  -- How a chat window opens.
  open = 'botright 12split',
  -- Normal-mode key that accepts the pending invitation (set while one is pending); false: none.
  accept_key = '<leader>oa',
  -- Notify (without its text) when a message arrives for a chat that is not on screen.
  notify_messages = true,
}

--- Sessions by peer as the daemon last reported them:
--- { state, mode, trust, roomId, detail } with the API's enum names (SESSION_STATE_…).
M.sessions = {}
--- The peer whose invitation arrived last (what :OtrAccept without a user accepts).
M.last_inviter = nil
--- The daemon's connection to the Rocket.Chat server (CONNECTION_STATE_…), once reported.
M.connection = nil

local accept_mapped = false
local stopping = false -- the editor is exiting: the bridge's end is expected, not news

local function notify(msg, level)
  vim.notify('otrd: ' .. msg, level or vim.log.levels.INFO)
end

local function short(enum, prefix)
  if type(enum) ~= 'string' then
    return ''
  end
  return (enum:gsub('^' .. prefix, ''):lower())
end

local function why(s)
  return (type(s.detail) == 'string' and s.detail ~= '') and (': ' .. s.detail) or ''
end

local function redraw()
  vim.cmd('redrawstatus!')
end

local function peer_ref(user)
  local room = user:match('^room:(.+)$')
  if room then
    return { roomId = room }
  end
  return { username = (user:gsub('^@', '')) }
end

local function unmap_accept()
  if accept_mapped then
    pcall(vim.keymap.del, 'n', config.accept_key)
    accept_mapped = false
  end
end

local function map_accept()
  if not config.accept_key or accept_mapped then
    return
  end
  -- Never take over a key the user mapped themselves.
  if vim.fn.maparg(vim.api.nvim_replace_termcodes(config.accept_key, true, true, true), 'n') ~= '' then
    return
  end
  vim.keymap.set('n', config.accept_key, function()
    M.accept()
  end, { desc = 'otrd: accept the pending OTR invitation' })
  accept_mapped = true
end

local function send_from_prompt(peer, text)
  M.send(peer, text)
end

local ensure -- forward declaration: events and the bridge need each other

--- Updates a peer's session from a state change or a Session message.
local function set_session(peer, s)
  if not peer or peer == '' then
    return
  end
  local state = s.state
  if state == 'SESSION_STATE_ENDED' or state == 'SESSION_STATE_NOT_STARTED' then
    M.sessions[peer] = nil
  else
    M.sessions[peer] = {
      state = state,
      mode = s.mode,
      trust = s.trust,
      roomId = s.roomId,
      detail = s.detail,
      -- "legacy — the server could read this": both ends run otrd but the session is legacy.
      warning = (s.warning ~= nil and s.warning ~= '') and s.warning or nil,
    }
  end
  redraw()
end

-- How far a session has come, for merging RPC answers (below).
local PROGRESS = {
  SESSION_STATE_REQUESTED = 1,
  SESSION_STATE_ESTABLISHING = 1,
  SESSION_STATE_ESTABLISHED = 2,
}

--- Applies a session as an RPC answer saw it. Answers and events reach us separately through the
--- bridge, so an answer can arrive after an event newer than it (a fast peer's `established`
--- overtaking the StartSession answer that says `establishing`): an answer may fill in a session
--- or move it forward, never back. Events always apply (set_session).
local function merge_answer(peer, s)
  if not peer or peer == '' or not s then
    return
  end
  local cur = M.sessions[peer]
  local have = cur and (PROGRESS[cur.state] or 0) or 0
  if cur == nil or have == 0 or (PROGRESS[s.state] or 0) > have then
    set_session(peer, s)
  end
end

local handle = {}

function handle.invitation(inv, replay)
  set_session(inv.peer, { state = 'SESSION_STATE_REQUESTED', mode = inv.mode, roomId = inv.roomId })
  if replay then
    return
  end
  M.last_inviter = inv.peer
  map_accept()
  local key = (config.accept_key and accept_mapped) and (config.accept_key .. ' or ') or ''
  notify(
    string.format(
      '%s invites you to an OTR session (%s). Accept: %s:OtrAccept; decline: :OtrDecline',
      inv.peer,
      short(inv.mode, 'MODE_') ~= 'unspecified' and short(inv.mode, 'MODE_') or 'scheme not yet known',
      key
    ),
    vim.log.levels.WARN
  )
end

function handle.state(s)
  set_session(s.peer, s)
  if s.peer == M.last_inviter and s.state ~= 'SESSION_STATE_REQUESTED' then
    M.last_inviter = nil
    unmap_accept()
  end
  local c = chat.get(s.peer)
  if s.backlog ~= nil then
    -- Rocket.Chat 8.x back-pressure: messages wait for the server's rate limit, or no longer do.
    -- The session itself did not change.
    if c then
      chat.notice(c, s.detail or '')
    end
    return
  end
  local state = short(s.state, 'SESSION_STATE_')
  if s.state == 'SESSION_STATE_ENDED' then
    chat.wipe(s.peer)
    notify(string.format('session with %s ended%s', s.peer, why(s)))
    return
  end
  if c then
    local verified = s.trust == 'TRUST_VERIFIED' and 'verified' or 'unverified'
    if s.state == 'SESSION_STATE_ESTABLISHED' then
      chat.notice(c, string.format('session %s (%s, %s)', state, short(s.mode, 'MODE_'), verified))
    else
      chat.notice(c, 'session ' .. state .. why(s))
    end
  end
  if s.state == 'SESSION_STATE_DECLINED' or s.state == 'SESSION_STATE_TIMEOUT' or s.state == 'SESSION_STATE_ERROR' then
    notify(string.format('session with %s: %s%s', s.peer, state, why(s)), vim.log.levels.WARN)
  end
end

function handle.message(m, replay)
  local c = chat.get(m.peer)
  local shown = c and vim.fn.bufwinid(c.buf) ~= -1
  c = c or chat.ensure(m.peer, send_from_prompt)
  chat.add_message(c, m.peer, m)
  if not replay and not shown and m.direction == 'DIRECTION_IN' and config.notify_messages then
    notify(string.format('new OTR message from %s (:OtrChat %s)', m.peer, m.peer))
  end
end

function handle.delivered(d)
  local c = chat.get(d.peer)
  if c then
    chat.mark_delivered(c, d.id)
  end
end

function handle.error(e)
  local c = (e.peer and e.peer ~= '') and chat.get(e.peer) or nil
  if c and e.id and e.id ~= '' then
    chat.mark_failed(c, e.id)
  end
  if c then
    chat.notice(c, 'error: ' .. (e.message or '?'))
  end
  notify(string.format('%s%s', c and (e.peer .. ': ') or '', e.message or '?'), vim.log.levels.ERROR)
end

function handle.connection(c)
  local was = M.connection
  M.connection = c.state
  redraw()
  if c.state == 'CONNECTION_STATE_TWO_FACTOR_REQUIRED' then
    -- Says what the server asks for (totp or e-mail, why) every time it changes; :OtrLogin asks.
    notify((c.detail or 'two-factor code required') .. ' — run :OtrLogin', vim.log.levels.WARN)
    return
  end
  if c.state ~= was and c.state ~= 'CONNECTION_STATE_CONNECTED' and c.state ~= 'CONNECTION_STATE_CONNECTING' then
    notify('server connection ' .. short(c.state, 'CONNECTION_STATE_') .. ': ' .. (c.detail or ''), vim.log.levels.WARN)
  end
end

function handle.alarm(a)
  local c = chat.get(a.peer)
  if c then
    chat.notice(c, 'SECURITY ALARM: ' .. a.message)
  end
  notify(string.format('SECURITY ALARM (%s) %s: %s', a.code, a.peer, a.message), vim.log.levels.ERROR)
end

local function on_event(event)
  for kind, fn in pairs(handle) do
    local body = event[kind]
    if type(body) == 'table' then
      fn(body, event.replay == true)
      return
    end
  end
end

local function on_exit(code, reason)
  -- otrctl gone: either the daemon went away (sessions are over) or otrctl failed; either way
  -- the conversations on screen are no longer live, so they go.
  chat.wipe_all()
  M.sessions = {}
  M.last_inviter = nil
  unmap_accept()
  redraw()
  if code ~= 0 and not stopping then
    notify('the otrctl rpc bridge stopped: ' .. reason, vim.log.levels.ERROR)
  end
end

local function on_watch_ended(err)
  notify('event stream ended: ' .. (err.message or '?'), vim.log.levels.WARN)
  chat.wipe_all()
  M.sessions = {}
  redraw()
end

local function on_stray_error(err)
  notify('bridge: ' .. (err.message or '?'), vim.log.levels.ERROR)
end

local function bridge_cmd()
  local cmd = vim.deepcopy(config.cmd)
  if config.socket then
    table.insert(cmd, '--socket')
    table.insert(cmd, config.socket)
  end
  table.insert(cmd, 'rpc')
  return cmd
end

--- Starts the bridge (once per editor) and subscribes to events. Returns true when running.
ensure = function()
  if bridge.running() then
    return true
  end
  stopping = false
  local ok, err = bridge.start(bridge_cmd(), {
    on_event = on_event,
    on_exit = on_exit,
    on_watch_ended = on_watch_ended,
    on_stray_error = on_stray_error,
  })
  if not ok then
    notify(err, vim.log.levels.ERROR)
    return false
  end
  bridge.request('WatchEvents', { includeScrollback = true }, function(e)
    if e then
      notify('cannot watch events: ' .. e.message, vim.log.levels.ERROR)
      return
    end
    -- Listed only once the watch is attached: a session that changed before that (say, one the
    -- first :OtrStart began, established before the stream was up) is caught here, and every
    -- later change comes as an event.
    bridge.request('ListSessions', nil, function(e2, result)
      if e2 then
        return -- the bridge's exit reports why
      end
      for _, s in ipairs(result.sessions or {}) do
        merge_answer(s.peer, s)
      end
    end)
  end)
  return true
end

--- Calls `method` with `params`; `on_ok(result)` runs on success, failures are notified.
local function call(method, params, on_ok)
  if not ensure() then
    return
  end
  bridge.request(method, params, function(err, result)
    if err then
      if stopping then
        return
      end
      notify(string.format('%s: %s (%s)', method, err.message or '?', err.code or '?'), vim.log.levels.ERROR)
      return
    end
    if on_ok then
      on_ok(result or {})
    end
  end)
end

--- Calls `method` with `params` and `cb(err, result)` (both nil-safe), without notifying.
function M.request(method, params, cb)
  if not ensure() then
    cb({ code = 'UNAVAILABLE', message = 'the bridge cannot start' }, nil)
    return
  end
  bridge.request(method, params, cb)
end

--- Configures the plugin (all keys optional; see :help otrd-config).
function M.setup(opts)
  config = vim.tbl_deep_extend('force', config, opts or {})
end

--- The peer named by a command argument, else the current chat buffer's peer.
local function peer_or_current(user)
  if user and user ~= '' then
    return user
  end
  local ok, peer = pcall(vim.api.nvim_buf_get_var, 0, 'otrd_peer')
  if ok then
    return peer
  end
  return nil
end

--- Opens (or focuses) the chat buffer with `peer`.
function M.open(peer)
  ensure()
  local existed = chat.get(peer) ~= nil
  local c = chat.ensure(peer, send_from_prompt)
  chat.show(c, config.open)
  if not existed and bridge.running() then
    -- A new buffer starts empty: attach again with scrollback to fill it. Buffers that already
    -- show a message skip it (by id), and the bridge reads the old stream until the new one
    -- carries everything, so no live event (a session's state above all) is lost or repeated.
    bridge.request('WatchEvents', { includeScrollback = true }, function() end)
  end
end

--- :OtrStart {user} [legacy|native]
function M.start(user, scheme)
  local params = { peer = peer_ref(user) }
  if scheme == 'legacy' then
    params.scheme = 'SCHEME_PREFERENCE_LEGACY'
  elseif scheme == 'native' then
    params.scheme = 'SCHEME_PREFERENCE_NATIVE'
  end
  call('StartSession', params, function(result)
    if result.session then
      merge_answer(result.session.peer, result.session)
    end
    M.open(user)
    notify('invited ' .. user .. '; waiting for the session to be established')
  end)
end

--- :OtrAccept [user] — the last inviter when no user is given.
function M.accept(user)
  user = user or M.last_inviter
  if not user then
    notify('no pending invitation', vim.log.levels.WARN)
    return
  end
  call('AcceptSession', { peer = peer_ref(user) }, function(result)
    if result.session then
      merge_answer(result.session.peer, result.session)
    end
    if M.last_inviter == user then
      M.last_inviter = nil
      unmap_accept()
    end
    M.open(user)
  end)
end

--- :OtrDecline [user] — the last inviter when no user is given.
function M.decline(user)
  user = user or M.last_inviter
  if not user then
    notify('no pending invitation', vim.log.levels.WARN)
    return
  end
  call('DeclineSession', { peer = peer_ref(user) }, function()
    if M.last_inviter == user then
      M.last_inviter = nil
      unmap_accept()
    end
    notify('declined ' .. user)
  end)
end

--- :OtrRefresh {user}
function M.refresh(user)
  call('RefreshSession', { peer = peer_ref(user) }, function()
    notify('refreshing the keys of the session with ' .. user)
  end)
end

--- :OtrEnd {user} — the chat buffer goes when the daemon reports the session ended.
function M.end_session(user)
  call('EndSession', { peer = peer_ref(user) })
end

--- :OtrLock — ends every session and wipes every chat buffer.
function M.lock()
  call('EndAllSessions', nil, function(result)
    chat.wipe_all()
    M.sessions = {}
    redraw()
    notify(string.format('locked: ended %s session(s)', tostring(result.ended or 0)))
  end)
end

--- Sends `text` to `peer` over the established session.
function M.send(peer, text)
  call('SendMessage', { peer = peer_ref(peer), text = text })
end

local function show_fingerprint(f)
  local lines = { 'your fingerprint: ' .. (f.ownFingerprint or '') }
  if f.peer and f.peer ~= '' then
    table.insert(lines, string.format('%s: %s (%s)', f.peer, f.peerFingerprint ~= '' and f.peerFingerprint or 'never seen', short(f.trust, 'TRUST_')))
    if f.sas and f.sas ~= '' then
      table.insert(lines, 'SAS (compare all five groups by voice): ' .. f.sas)
    end
    if f.previousFingerprint and f.previousFingerprint ~= '' then
      table.insert(lines, 'CHANGED; previously: ' .. f.previousFingerprint)
    end
  end
  notify(table.concat(lines, '\n'))
end

--- :OtrFingerprint [user]
function M.fingerprint(user)
  call('GetFingerprint', user and { peer = peer_ref(user) } or nil, show_fingerprint)
end

local function trust_answered(user, text)
  return function(f)
    local s = M.sessions[f.peer ~= '' and f.peer or user]
    if s then
      s.trust = f.trust
      redraw()
    end
    notify(text)
    show_fingerprint(f)
  end
end

--- :OtrTrust {user} {fingerprint}: verifies with the fingerprint the user compared. Without one
--- the daemon refuses (an empty fingerprint never verifies) and says how to compare.
function M.trust(user, fingerprint)
  call('TrustPeer', { peer = peer_ref(user), fingerprint = fingerprint or '' }, trust_answered(user, user .. ' is now verified'))
end

--- :OtrTrustSas {user} {sas...}: verifies because the user compared this session's SAS (all
--- five groups, typed back).
function M.trust_sas(user, sas)
  call('ConfirmSas', { peer = peer_ref(user), sas = sas or '' }, trust_answered(user, user .. ' is now verified (SAS)'))
end

--- :OtrAcceptKey {user} [fingerprint]: lets a new key in without verifying it.
function M.accept_peer_key(user, fingerprint)
  call('AcceptPeerKey', { peer = peer_ref(user), fingerprint = fingerprint or '' },
    trust_answered(user, user .. "'s key is accepted, NOT verified: compare fingerprints or the SAS to verify"))
end

--- :OtrLogin [code]: hands the daemon the two-factor code its login waits for; without a code
--- it is asked with inputsecret() (not echoed, not kept in the command history).
function M.login(code)
  if code == nil or code == '' then
    code = vim.fn.inputsecret('two-factor code: ')
  end
  if code == nil or code == '' then
    return
  end
  call('SubmitLoginCode', { code = code }, function(r)
    notify(r.detail ~= nil and r.detail ~= '' and r.detail or 'code accepted')
  end)
end

--- A statusline component: each session's peer, state and whether it is verified, e.g.
--- `OTR echo:established(unverified) bob:requested`, and `[legacy — the server could read this]`
--- after a legacy session between two otrd daemons; '' without sessions.
function M.statusline()
  local peers = vim.tbl_keys(M.sessions)
  if #peers == 0 then
    return ''
  end
  table.sort(peers)
  local parts = {}
  for _, peer in ipairs(peers) do
    local s = M.sessions[peer]
    local item = peer .. ':' .. short(s.state, 'SESSION_STATE_')
    if s.state == 'SESSION_STATE_ESTABLISHED' then
      item = item .. (s.trust == 'TRUST_VERIFIED' and '(verified)' or '(unverified)')
    end
    if s.warning then
      item = item .. '[' .. s.warning .. ']'
    end
    table.insert(parts, item)
  end
  return 'OTR ' .. table.concat(parts, ' ')
end

--- Peers known to the plugin, for command completion.
function M.complete(arglead)
  local seen, list = {}, {}
  for peer in pairs(M.sessions) do
    seen[peer] = true
  end
  for _, peer in ipairs(chat.peers()) do
    seen[peer] = true
  end
  if M.last_inviter then
    seen[M.last_inviter] = true
  end
  for peer in pairs(seen) do
    if peer:sub(1, #arglead) == arglead then
      table.insert(list, peer)
    end
  end
  table.sort(list)
  return list
end

M.peer_or_current = peer_or_current

--- Stops the bridge (on exit): it answers what is in flight and ends.
function M.stop()
  stopping = true
  bridge.stop()
end

return M
