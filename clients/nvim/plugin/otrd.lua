-- :Otr* commands of the otrd plugin. Loading this file starts nothing: the `otrctl rpc` bridge
-- starts with the first command that needs the daemon.

if vim.g.loaded_otrd then
  return
end
vim.g.loaded_otrd = true

local function otrd()
  return require('otrd')
end

local function complete(arglead)
  return otrd().complete(arglead)
end

local function command(name, fn, opts)
  if opts.nargs ~= 0 then
    opts.complete = opts.complete or complete
  end
  vim.api.nvim_create_user_command(name, fn, opts)
end

local function need_peer(args, what)
  local peer = otrd().peer_or_current(args.fargs[1])
  if not peer then
    vim.notify('otrd: ' .. what .. ' needs a user (or run it in a chat buffer)', vim.log.levels.ERROR)
  end
  return peer
end

command('OtrStart', function(args)
  otrd().start(args.fargs[1], args.fargs[2])
end, {
  nargs = '+',
  desc = 'Start an OTR session: {user} [legacy|native]',
})

command('OtrLogin', function(args)
  otrd().login(args.fargs[1])
end, {
  nargs = '?',
  complete = function()
    return {}
  end,
  desc = 'Give the two-factor code the login waits for (asked when omitted)',
})

command('OtrAccept', function(args)
  otrd().accept(args.fargs[1])
end, { nargs = '?', desc = 'Accept the invitation of [user] (default: the last inviter)' })

command('OtrDecline', function(args)
  otrd().decline(args.fargs[1])
end, { nargs = '?', desc = 'Decline the invitation of [user] (default: the last inviter)' })

command('OtrRefresh', function(args)
  local peer = need_peer(args, ':OtrRefresh')
  if peer then
    otrd().refresh(peer)
  end
end, { nargs = '?', desc = 'Replace the keys of the session with {user}' })

command('OtrEnd', function(args)
  local peer = need_peer(args, ':OtrEnd')
  if peer then
    otrd().end_session(peer)
  end
end, { nargs = '?', desc = 'End the session with {user}; its chat buffer is wiped' })

command('OtrLock', function()
  otrd().lock()
end, { nargs = 0, desc = 'End every session and wipe every chat buffer' })

command('OtrFingerprint', function(args)
  otrd().fingerprint(args.fargs[1])
end, { nargs = '?', desc = "Show your fingerprint, and [user]'s with trust and SAS" })

command('OtrTrust', function(args)
  local peer = need_peer(args, ':OtrTrust')
  if peer then
    otrd().trust(peer, args.fargs[2])
  end
end, { nargs = '+', desc = "Verify {user}'s identity key with the {fingerprint} you compared" })

command('OtrTrustSas', function(args)
  local peer = need_peer(args, ':OtrTrustSas')
  if peer then
    otrd().trust_sas(peer, table.concat(vim.list_slice(args.fargs, 2), ' '))
  end
end, { nargs = '+', desc = "Verify {user}'s key: the SAS you compared, all five groups" })

command('OtrAcceptKey', function(args)
  local peer = need_peer(args, ':OtrAcceptKey')
  if peer then
    otrd().accept_peer_key(peer, args.fargs[2])
  end
end, { nargs = '+', desc = "Accept {user}'s new key without verifying it [fingerprint]" })

command('OtrChat', function(args)
  otrd().open(args.fargs[1])
end, { nargs = 1, desc = 'Open the chat buffer with {user}' })

vim.api.nvim_create_autocmd('VimLeavePre', {
  group = vim.api.nvim_create_augroup('otrd', { clear = true }),
  callback = function()
    if package.loaded['otrd'] then
      require('otrd').stop()
    end
  end,
})
