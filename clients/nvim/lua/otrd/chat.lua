-- Chat buffers: one per peer, named `otr://<peer>`, with the conversation above a prompt line.
--
-- Nothing here may reach the disk: the buffers are prompt buffers (never written), without swap
-- or undo file, wiped when hidden, and wiped by the plugin when the session ends or otrd locks.
-- Delivery marks are extmarks (virtual text) on our own messages, so they change without
-- rewriting the conversation.

local M = {}

local ns = vim.api.nvim_create_namespace('otrd_chat')
local chats = {} -- peer -> { buf, marks = {id -> extmark}, seen = {id -> true}, delivered = {id -> true} }

local MARK_PENDING = { { ' …', 'Comment' } }
local MARK_DELIVERED = { { ' ✓', 'String' } }
local MARK_FAILED = { { ' ✗ not delivered', 'ErrorMsg' } }

local function set_option(buf, name, value)
  if vim.fn.has('nvim-0.10') == 1 then
    vim.api.nvim_set_option_value(name, value, { buf = buf })
  else
    vim.api.nvim_buf_set_option(buf, name, value)
  end
end

--- Inserts `lines` above the prompt line (always the buffer's last). Returns the 0-based row of
--- the first inserted line.
local function insert(chat, lines)
  local n = vim.api.nvim_buf_line_count(chat.buf)
  vim.api.nvim_buf_set_lines(chat.buf, n - 1, n - 1, false, lines)
  return n - 1
end

local function clock(ts_ms)
  local ms = tonumber(ts_ms)
  if not ms or ms <= 0 then
    return os.date('%H:%M')
  end
  return os.date('%H:%M', math.floor(ms / 1000))
end

--- The chat with `peer`, or nil if it has no buffer.
function M.get(peer)
  local chat = chats[peer]
  if chat and vim.api.nvim_buf_is_valid(chat.buf) then
    return chat
  end
  chats[peer] = nil
  return nil
end

--- The chat with `peer`, creating its buffer. `on_send(peer, text)` runs for each line typed at
--- the prompt.
function M.ensure(peer, on_send)
  local chat = M.get(peer)
  if chat then
    return chat
  end
  -- A scratch buffer starts as nofile and noswapfile; make it a prompt that wipes when hidden.
  local buf = vim.api.nvim_create_buf(true, true)
  set_option(buf, 'swapfile', false)
  set_option(buf, 'undofile', false)
  set_option(buf, 'buftype', 'prompt')
  set_option(buf, 'bufhidden', 'wipe')
  set_option(buf, 'filetype', 'otrchat')
  -- A buffer left over from an earlier chat may hold the name; ours is the live one.
  local old = vim.fn.bufnr('otr://' .. peer)
  if old ~= -1 and old ~= buf then
    pcall(vim.api.nvim_buf_delete, old, { force = true })
  end
  vim.api.nvim_buf_set_name(buf, 'otr://' .. peer)
  vim.api.nvim_buf_set_var(buf, 'otrd_peer', peer)
  vim.fn.prompt_setprompt(buf, '> ')
  vim.fn.prompt_setcallback(buf, function(text)
    -- The entered line stays in the buffer as typed; drop it; the message event will show the
    -- message as sent (with its delivery mark), in whichever front-end sent it.
    local n = vim.api.nvim_buf_line_count(buf)
    if n >= 2 then
      vim.api.nvim_buf_set_lines(buf, n - 2, n - 1, false, {})
    end
    if text:match('%S') then
      on_send(peer, text)
    end
  end)
  chat = { buf = buf, marks = {}, seen = {}, delivered = {} }
  chats[peer] = chat
  vim.api.nvim_create_autocmd('BufWipeout', {
    buffer = buf,
    once = true,
    callback = function()
      if chats[peer] and chats[peer].buf == buf then
        chats[peer] = nil
      end
    end,
  })
  return chat
end

--- Shows the chat with `peer` in a window: an existing one, else a new one opened with `open_cmd`.
function M.show(chat, open_cmd)
  local win = vim.fn.bufwinid(chat.buf)
  if win ~= -1 then
    vim.api.nvim_set_current_win(win)
    return
  end
  vim.cmd(open_cmd)
  vim.api.nvim_win_set_buf(0, chat.buf)
end

--- Appends a chat message (from a `message` event) unless this buffer already shows its id.
function M.add_message(chat, peer, msg)
  if msg.id and msg.id ~= '' then
    if chat.seen[msg.id] then
      return
    end
    chat.seen[msg.id] = true
  end
  local out = msg.direction == 'DIRECTION_OUT'
  local who = out and 'me' or peer
  local text_lines = vim.split(msg.text or '', '\n', { plain = true })
  local lines = { string.format('%s %s: %s', clock(msg.tsMs), who, text_lines[1]) }
  for i = 2, #text_lines do
    table.insert(lines, '      ' .. text_lines[i])
  end
  local row = insert(chat, lines)
  if out and msg.id and msg.id ~= '' then
    local mark = chat.delivered[msg.id] and MARK_DELIVERED or MARK_PENDING
    chat.marks[msg.id] = vim.api.nvim_buf_set_extmark(chat.buf, ns, row, 0, {
      virt_text = mark,
      virt_text_pos = 'eol',
    })
  end
end

local function remark(chat, id, mark)
  local extmark = chat.marks[id]
  if not extmark then
    return
  end
  local pos = vim.api.nvim_buf_get_extmark_by_id(chat.buf, ns, extmark, {})
  if pos[1] then
    vim.api.nvim_buf_set_extmark(chat.buf, ns, pos[1], 0, {
      id = extmark,
      virt_text = mark,
      virt_text_pos = 'eol',
    })
  end
end

--- Marks our message `id` as delivered (a `delivered` event).
function M.mark_delivered(chat, id)
  chat.delivered[id] = true
  remark(chat, id, MARK_DELIVERED)
end

--- Marks our message `id` as not delivered (an `error` event naming it).
function M.mark_failed(chat, id)
  remark(chat, id, MARK_FAILED)
end

--- The delivery state of our message `id` in this chat: 'delivered', 'pending', 'failed' or nil.
function M.delivery(chat, id)
  local extmark = chat.marks[id]
  if not extmark then
    return nil
  end
  local details = vim.api.nvim_buf_get_extmark_by_id(chat.buf, ns, extmark, { details = true })
  local virt = details[3] and details[3].virt_text
  local text = virt and virt[1] and virt[1][1] or ''
  if text:find('✓', 1, true) then
    return 'delivered'
  elseif text:find('✗', 1, true) then
    return 'failed'
  end
  return 'pending'
end

--- Appends a notice line (state changes, errors) to the chat.
function M.notice(chat, text)
  insert(chat, { '-- ' .. text })
end

--- Wipes the chat with `peer` (its session ended).
function M.wipe(peer)
  local chat = chats[peer]
  chats[peer] = nil
  if chat and vim.api.nvim_buf_is_valid(chat.buf) then
    vim.api.nvim_buf_delete(chat.buf, { force = true })
  end
end

--- Wipes every chat (otrd locked, or the bridge went away).
function M.wipe_all()
  for peer in pairs(chats) do
    M.wipe(peer)
  end
end

--- The peers that have a chat buffer.
function M.peers()
  local list = {}
  for peer in pairs(chats) do
    if M.get(peer) then
      table.insert(list, peer)
    end
  end
  table.sort(list)
  return list
end

return M
