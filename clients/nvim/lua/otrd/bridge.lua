-- The one `otrctl rpc` process of this editor: starts it, sends JSON-line requests, matches the
-- answers to their callbacks by id, and hands event lines to the plugin.
--
-- Line protocol (see `otrctl rpc --help` and the README): a request is
-- {"id":N,"method":"…","params":{…}}, an answer {"id":N,"result":{…}} or
-- {"id":N,"error":{"code":"…","message":"…"}}, an event {"event":{…}}, and the end of the
-- event stream {"watch":"ended","error":{…}}.

local M = {}

local job = nil -- channel id of the running bridge, or nil
local partial = '' -- an unterminated last stdout line, completed by the next chunk
local next_id = 1
local pending = {} -- id -> callback(err, result)
local stderr = {} -- the bridge's last stderr lines, for the exit message
local handlers = {}

local function decode(line)
  local ok, msg = pcall(vim.json.decode, line)
  if not ok or type(msg) ~= 'table' then
    return nil
  end
  return msg
end

local function nonnil(v)
  if v == vim.NIL then
    return nil
  end
  return v
end

local function dispatch(line)
  local msg = decode(line)
  if not msg then
    return
  end
  local event = nonnil(msg.event)
  if event then
    if handlers.on_event then
      handlers.on_event(event)
    end
    return
  end
  if msg.watch ~= nil then
    if handlers.on_watch_ended then
      handlers.on_watch_ended(nonnil(msg.error) or {})
    end
    return
  end
  local id = nonnil(msg.id)
  local cb = id and pending[id]
  if id then
    pending[id] = nil
  end
  local err = nonnil(msg.error)
  if cb then
    cb(err, nonnil(msg.result))
  elseif err and handlers.on_stray_error then
    -- An error for no request of ours (a line the bridge could not read).
    handlers.on_stray_error(err)
  end
end

local function on_stdout(_, data)
  if not data then
    return
  end
  -- Neovim splits output at newlines: the first item continues the last chunk's unterminated
  -- line, and the last item is the start of a line still to come ('' after a newline).
  data[1] = partial .. data[1]
  partial = table.remove(data)
  for _, line in ipairs(data) do
    if line ~= '' then
      dispatch(line)
    end
  end
end

local function on_stderr(_, data)
  for _, line in ipairs(data or {}) do
    if line ~= '' then
      table.insert(stderr, line)
      if #stderr > 20 then
        table.remove(stderr, 1)
      end
    end
  end
end

local function on_exit(_, code)
  job = nil
  partial = ''
  local failed = pending
  pending = {}
  local reason = table.concat(stderr, '\n')
  stderr = {}
  local err = {
    code = 'UNAVAILABLE',
    message = reason ~= '' and reason or ('otrctl rpc exited with status ' .. tostring(code)),
  }
  for _, cb in pairs(failed) do
    cb(err, nil)
  end
  if handlers.on_exit then
    handlers.on_exit(code, reason)
  end
end

--- True while the bridge process runs.
function M.running()
  return job ~= nil
end

--- Starts `cmd` (a list: program and arguments) as the bridge. `h` has on_event(event),
--- on_watch_ended(err), on_stray_error(err) and on_exit(code, stderr_text).
--- Returns true, or false and why.
function M.start(cmd, h)
  if job then
    return true
  end
  handlers = h or {}
  partial = ''
  stderr = {}
  local ok, id = pcall(vim.fn.jobstart, cmd, {
    on_stdout = on_stdout,
    on_stderr = on_stderr,
    on_exit = on_exit,
  })
  if not ok then
    return false, tostring(id)
  end
  if id <= 0 then
    return false, 'cannot run ' .. tostring(cmd[1]) .. ' (is otrctl on $PATH?)'
  end
  job = id
  return true
end

--- Sends a request; `cb(err, result)` runs with the answer (`err` is {code, message}).
function M.request(method, params, cb)
  if not job then
    cb({ code = 'UNAVAILABLE', message = 'the otrctl rpc bridge is not running' }, nil)
    return
  end
  local id = next_id
  next_id = next_id + 1
  pending[id] = cb
  local line = vim.json.encode({ id = id, method = method, params = params or vim.empty_dict() })
  vim.fn.chansend(job, line .. '\n')
end

--- Closes the bridge's stdin: it answers what is in flight and exits.
function M.stop()
  if job then
    vim.fn.chanclose(job, 'stdin')
  end
end

return M
