//! Groups: create, join, leave, list, and members with presence.

use super::{ChatService, ServiceError, Session, check_identity};
use crate::model::{GroupId, UserId};
use crate::protocol::{
    Ack, AddGroup, CreateGroup, ErrorCode, GroupEntry, LeaveGroup, ListMembers, MemberEntry,
    ServerFrame, msgid,
};
use crate::store::GroupCaps;

impl ChatService {
    pub(super) async fn create_group(
        &self,
        session: &Session,
        rid: Option<u64>,
        req: CreateGroup,
    ) -> Result<ServerFrame, ServiceError> {
        check_identity(session, req.id)?;
        self.check_name("group name", &req.groupname)?;
        let max = self.inner.config.max_desc_chars;
        if req.groupdesc.chars().count() > max {
            return Err(ServiceError::with_detail(
                ErrorCode::InvalidValue,
                format!("groupdesc must be at most {max} characters"),
            ));
        }
        let group = self
            .inner
            .store
            .create_group(
                session.user.id,
                &req.groupname,
                &req.groupdesc,
                self.group_caps(),
            )
            .await?;
        Ok(ServerFrame::Ack(Ack {
            rid,
            req: msgid::CREATE_GROUP,
            groupid: Some(group),
            seq: None,
            resume: None,
            mid: None,
        }))
    }

    pub(super) async fn join_group(
        &self,
        session: &Session,
        rid: Option<u64>,
        req: AddGroup,
    ) -> Result<ServerFrame, ServiceError> {
        check_identity(session, req.id)?;
        self.inner
            .store
            .join_group(req.groupid, session.user.id, self.group_caps())
            .await?;
        Ok(ServerFrame::Ack(Ack {
            rid,
            req: msgid::ADD_GROUP,
            groupid: Some(req.groupid),
            seq: None,
            resume: None,
            mid: None,
        }))
    }

    /// The membership caps, which the store keeps atomically with each
    /// change.
    fn group_caps(&self) -> GroupCaps {
        GroupCaps {
            groups_per_user: self.inner.config.max_groups_per_user,
            members_per_group: self.inner.config.max_group_members,
        }
    }

    pub(super) async fn leave_group(
        &self,
        session: &Session,
        rid: Option<u64>,
        req: LeaveGroup,
    ) -> Result<ServerFrame, ServiceError> {
        check_identity(session, req.id)?;
        if !self
            .inner
            .store
            .leave_group(req.groupid, session.user.id)
            .await?
        {
            return Err(ServiceError::with_detail(
                ErrorCode::NotMember,
                format!("not a member of group {}", req.groupid),
            ));
        }
        Ok(ServerFrame::Ack(Ack {
            rid,
            req: msgid::LEAVE_GROUP,
            groupid: Some(req.groupid),
            seq: None,
            resume: None,
            mid: None,
        }))
    }

    pub(super) async fn list_groups(
        &self,
        session: &Session,
        rid: Option<u64>,
    ) -> Result<ServerFrame, ServiceError> {
        Ok(ServerFrame::Groups {
            rid,
            groups: self.group_entries(session.user.id).await?,
        })
    }

    pub(super) async fn list_members(
        &self,
        session: &Session,
        rid: Option<u64>,
        req: ListMembers,
    ) -> Result<ServerFrame, ServiceError> {
        let users = self.member_entries(req.groupid).await?;
        if !users.iter().any(|m| m.member.user.id == session.user.id) {
            return Err(ServiceError::with_detail(
                ErrorCode::NotMember,
                format!("not a member of group {}", req.groupid),
            ));
        }
        Ok(ServerFrame::Members {
            rid,
            groupid: req.groupid,
            users,
        })
    }

    async fn member_entries(&self, group: GroupId) -> Result<Vec<MemberEntry>, ServiceError> {
        let members = self.inner.store.members(group).await?;
        let ids: Vec<UserId> = members.iter().map(|m| m.user.id).collect();
        let online = self.inner.presence.online(&ids).await?;
        Ok(members
            .into_iter()
            .zip(online)
            .map(|(member, online)| MemberEntry { member, online })
            .collect())
    }

    /// The groups of `user`, each with its members and their presence.
    pub(super) async fn group_entries(
        &self,
        user: UserId,
    ) -> Result<Vec<GroupEntry>, ServiceError> {
        let groups = self.inner.store.groups_of(user).await?;
        let mut entries = Vec::with_capacity(groups.len());
        for group in groups {
            let users = self.member_entries(group.id).await?;
            entries.push(GroupEntry { group, users });
        }
        Ok(entries)
    }
}
