-- wrk script for the upload scenario: every request POSTs the same 1 MiB body.
-- The reporting hook (done) comes from report.lua beside this file.

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

local UPLOAD_SIZE = 1048576

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/octet-stream"
-- Not all one byte, like the download body: 0..255 repeated.
local block = {}
for i = 0, 255 do
   block[#block + 1] = string.char(i)
end
wrk.body = string.rep(table.concat(block), UPLOAD_SIZE / 256)
