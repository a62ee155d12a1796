--[[ Every answer of the public server counted once, whoever produced it
(TorchServe, or Nginx itself: 4xx, 502/503/504, an error_page), by route,
model, colour and status, with a per-request latency histogram. Observed in the log
phase (set at server level, so error_page's named locations are counted
too) and served in Prometheus' text format on the admin server's /metrics.
TorchServe exports latency only as counters. ]]

local M = {}

local buckets -- upper bounds in seconds, ascending
local dict

function M.init(cfg)
    buckets = cfg.latency_buckets
    dict = ngx.shared[cfg.metrics_dict]
end

-- Log phase: one request answered.
function M.observe()
    local var = ngx.var
    local key = (var.route or "other") .. "|" .. (var.model or "") .. "|" .. (var.colour or "")
    local seconds = tonumber(var.request_time) or 0
    dict:incr("n|" .. key .. "|" .. var.status, 1, 0)
    dict:incr("sum|" .. key, seconds, 0)
    for i, le in ipairs(buckets) do
        if seconds <= le then
            dict:incr("b|" .. key .. "|" .. i, 1, 0)
            return
        end
    end
end

-- The Prometheus exposition of everything observed so far.
function M.exposition()
    local out, series, counts = {}, {}, {}
    local keys = dict:get_keys(0)
    out[#out + 1] = "# HELP twinserve_http_requests_total Requests answered, by route, model, colour and status."
    out[#out + 1] = "# TYPE twinserve_http_requests_total counter"
    for _, k in ipairs(keys) do
        local kind, route, model, colour, rest = k:match("^(%a+)|([^|]*)|([^|]*)|([^|]*)|?(.*)$")
        if kind then
            local labels = 'route="' .. route .. '",model="' .. model .. '",colour="' .. colour .. '"'
            local value = dict:get(k) or 0
            if kind == "n" then
                out[#out + 1] = "twinserve_http_requests_total{" .. labels .. ',status="' .. rest .. '"} ' .. value
                counts[labels] = (counts[labels] or 0) + value
            elseif kind == "sum" then
                series[labels] = value
            end
        end
    end
    out[#out + 1] = "# HELP twinserve_http_request_duration_seconds Time Nginx took to answer, per request."
    out[#out + 1] = "# TYPE twinserve_http_request_duration_seconds histogram"
    for labels, sum in pairs(series) do
        local route, model, colour = labels:match('route="([^"]*)",model="([^"]*)",colour="([^"]*)"')
        local prefix = "b|" .. route .. "|" .. model .. "|" .. colour .. "|"
        local cumulative = 0
        for i, le in ipairs(buckets) do
            cumulative = cumulative + (dict:get(prefix .. i) or 0)
            out[#out + 1] = "twinserve_http_request_duration_seconds_bucket{" .. labels .. ',le="' .. le .. '"} '
                .. cumulative
        end
        local count = counts[labels] or 0
        out[#out + 1] = "twinserve_http_request_duration_seconds_bucket{" .. labels .. ',le="+Inf"} ' .. count
        out[#out + 1] = "twinserve_http_request_duration_seconds_sum{" .. labels .. "} " .. sum
        out[#out + 1] = "twinserve_http_request_duration_seconds_count{" .. labels .. "} " .. count
    end
    return table.concat(out, "\n") .. "\n"
end

return M
