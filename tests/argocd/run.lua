-- Runs one Argo CD health script the way Argo CD does: the object as the global `obj`, the
-- script's returned table printed as two lines (status, then message).
--   lua5.1 tests/argocd/run.lua SCRIPT FIXTURE.json [--without-status]
-- --without-status drops obj.status: the object as Argo CD first sees it, before the controller
-- has written anything.
local cjson = require("cjson")

local script, fixture, option = arg[1], arg[2], arg[3]
if script == nil or fixture == nil then
  io.stderr:write("usage: lua5.1 tests/argocd/run.lua SCRIPT FIXTURE.json [--without-status]\n")
  os.exit(2)
end

-- JSON null decodes to cjson.null; Argo CD hands the script nil for it.
local function strip_nulls(value)
  if type(value) ~= "table" then
    return value
  end
  for k, v in pairs(value) do
    if v == cjson.null then
      value[k] = nil
    else
      value[k] = strip_nulls(v)
    end
  end
  return value
end

local file = assert(io.open(fixture, "r"))
local decoded = strip_nulls(cjson.decode(file:read("*a")))
file:close()
if option == "--without-status" then
  decoded.status = nil
end
obj = decoded

local check = assert(loadfile(script))
local result = check()
if type(result) ~= "table" then
  io.stderr:write(script .. " returned " .. type(result) .. ", not a table\n")
  os.exit(1)
end
print(tostring(result.status))
print(tostring(result.message))
