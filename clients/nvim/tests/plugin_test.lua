-- Headless test of the plugin against a real `otrd --demo` (run by tests/e2e/tests/nvim_plugin.rs,
-- which sets $OTRD_SOCKET and puts otrctl on $PATH):
--   nvim --headless -u NONE --cmd 'set rtp+=clients/nvim' -c 'luafile clients/nvim/tests/plugin_test.lua'
-- Starts a session with the demo contact `echo`, sends through the chat buffer's prompt, waits
-- for the reply and the delivery mark, ends the session and checks the buffer is wiped; then
-- the same for :OtrLock. Every wait is on a condition; any failure exits with status 1.

local WAIT_MS = 20000

local function log(msg)
  io.stderr:write('plugin_test: ' .. msg .. '\n')
end

-- Keep notifications visible in the test output, and for checks.
local notes = {}
vim.notify = function(msg, level)
  table.insert(notes, tostring(msg))
  log('notify[' .. tostring(level) .. ']: ' .. tostring(msg))
end

local function notified(text)
  for _, n in ipairs(notes) do
    if n:find(text, 1, true) then
      return true
    end
  end
  return false
end

local function wait_for(what, cond)
  if not vim.wait(WAIT_MS, cond, 20) then
    -- What the plugin believed at that moment and the daemon's own view (through a separate
    -- otrctl): they tell an event lost on the way from a session stuck in the daemon.
    local daemon = vim.fn.system({ 'otrctl', '--json', 'sessions' })
    error(
      'timed out waiting for ' .. what .. '; the plugin believed: ' .. vim.inspect(require('otrd').sessions)
        .. '; the daemon says: ' .. daemon,
      2
    )
  end
end

local function buffer_text(buf)
  return table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), '\n')
end

local function option(buf, name)
  return vim.api.nvim_buf_get_option(buf, name)
end

local function run()
  vim.cmd('runtime plugin/otrd.lua')
  assert(vim.fn.exists(':OtrStart') == 2, ':OtrStart is not defined; is clients/nvim on the runtimepath?')
  local otrd = require('otrd')
  local chat = require('otrd.chat')
  otrd.setup({ accept_key = false })

  log('starting a session with echo')
  vim.cmd('OtrStart echo')
  wait_for('the session with echo to be established', function()
    local s = otrd.sessions.echo
    return s ~= nil and s.state == 'SESSION_STATE_ESTABLISHED'
  end)
  local line = otrd.statusline()
  assert(line:find('echo:established', 1, true), 'statusline lacks the session: ' .. line)
  assert(line:find('(unverified)', 1, true) or line:find('(verified)', 1, true), 'statusline lacks trust: ' .. line)

  -- The chat buffer opens when the StartSession answer arrives, which a fast peer's
  -- `established` event can overtake: wait for it rather than assume it.
  wait_for('the chat buffer otr://echo', function()
    return vim.fn.bufnr('otr://echo') ~= -1
  end)
  local buf = vim.fn.bufnr('otr://echo')
  assert(vim.api.nvim_get_current_buf() == buf, 'the chat buffer is not the current buffer')
  assert(option(buf, 'buftype') == 'prompt', 'buftype is ' .. option(buf, 'buftype'))
  assert(option(buf, 'bufhidden') == 'wipe', 'bufhidden is ' .. option(buf, 'bufhidden'))
  assert(option(buf, 'swapfile') == false, 'swapfile is on')
  assert(option(buf, 'undofile') == false, 'undofile is on')

  log('sending through the prompt')
  local keys = vim.api.nvim_replace_termcodes('ihello from nvim<CR><Esc>', true, false, true)
  vim.api.nvim_feedkeys(keys, 'x', false)
  wait_for('the reply in the chat buffer', function()
    return buffer_text(buf):find('echo: echo: hello from nvim', 1, true) ~= nil
  end)
  local text = buffer_text(buf)
  assert(text:find('me: hello from nvim', 1, true), 'own message not shown:\n' .. text)
  assert(not text:find('> hello from nvim', 1, true), 'the typed prompt line was left behind:\n' .. text)

  wait_for('the delivery mark on our message', function()
    local c = chat.get('echo')
    if not c then
      return false
    end
    for id in pairs(c.marks) do
      if chat.delivery(c, id) == 'delivered' then
        return true
      end
    end
    return false
  end)

  log('ending the session')
  vim.cmd('OtrEnd echo')
  wait_for('the chat buffer to be wiped', function()
    return not vim.api.nvim_buf_is_valid(buf)
  end)
  assert(vim.fn.bufnr('otr://echo') == -1, 'a buffer otr://echo still exists')
  wait_for('the statusline to drop the session', function()
    return otrd.statusline() == ''
  end)

  log('a second session, then :OtrLock')
  vim.cmd('OtrStart echo')
  wait_for('the second session to be established', function()
    local s = otrd.sessions.echo
    return s ~= nil and s.state == 'SESSION_STATE_ESTABLISHED'
  end)
  wait_for('the chat buffer for the second session', function()
    return vim.fn.bufnr('otr://echo') ~= -1
  end)
  local buf2 = vim.fn.bufnr('otr://echo')
  otrd.send('echo', 'second')
  wait_for('the second reply', function()
    return vim.api.nvim_buf_is_valid(buf2) and buffer_text(buf2):find('echo: echo: second', 1, true) ~= nil
  end)
  assert(not buffer_text(buf2):find('hello from nvim', 1, true), 'the ended session scrollback came back')
  vim.cmd('OtrLock')
  wait_for('the chat buffer to be wiped by the lock', function()
    return not vim.api.nvim_buf_is_valid(buf2)
  end)
  wait_for('the lock to be confirmed', function()
    return notified('locked: ended 1 session(s)')
  end)
  assert(otrd.statusline() == '', 'sessions left after the lock: ' .. otrd.statusline())
  log('ok')
end

local ok, err = pcall(run)
if ok then
  require('otrd').stop()
  vim.cmd('qall!')
else
  log('FAILED: ' .. tostring(err))
  vim.cmd('cquit 1')
end
