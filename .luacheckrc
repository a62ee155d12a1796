-- luacheck nginx/lua (make lint): the Lua that runs inside Nginx.
std = "ngx_lua"
max_line_length = 120
