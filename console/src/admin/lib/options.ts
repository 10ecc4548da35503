// The API's enumerations the forms and filters offer (services/campaigns/spec.py).
export const TYPES = [
  'offer', 'flash_sale', 'challenge', 'event', 'referral', 'group_buy', 'bargain', 'assist', 'red_packet', 'lucky_draw',
] as const
export const STATUSES = [
  'draft', 'in_review', 'returned', 'rejected', 'approved', 'scheduled', 'active', 'paused', 'ended', 'archived',
] as const
export const CHANNELS = ['miniprogram', 'pos', 'h5', 'app', 'offline'] as const
export const VISIBILITIES = ['public', 'targeted', 'hidden'] as const
export const COUPON_KINDS = ['fixed', 'percent', 'threshold', 'free_item'] as const
export const GOAL_METRICS = ['visits', 'spend', 'purchases', 'checkin_streak', 'referrals'] as const
export type CampaignType = (typeof TYPES)[number]
export type CampaignStatus = (typeof STATUSES)[number]
export type ChannelName = (typeof CHANNELS)[number]
