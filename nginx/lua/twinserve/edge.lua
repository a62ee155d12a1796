--[[ Nginx's Lua entry points, called from the rendered nginx.conf. `init`
runs once in the master (init_by_lua) with the table twinserve renders from
the stack description; the others are one call per phase. ]]

local switch = require("twinserve.switch")
local metrics = require("twinserve.metrics")

local M = {}

function M.init(cfg)
    switch.init(cfg)
    metrics.init(cfg)
end

M.route = switch.route
M.health_colour = switch.health_colour
M.admin_production = switch.admin_production
M.observe = metrics.observe

function M.metrics()
    ngx.print(metrics.exposition())
end

return M
